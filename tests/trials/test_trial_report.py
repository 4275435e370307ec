"""`snakemake --report` after a trial-structured run shows the time-resolved table, figures and networks page,
each with its caption, under the category "Time-resolved", beside the run's config and software versions."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.e2e  # one Snakemake run of a tiny trial config (about 20 s on 2 cores)

TRIAL_ITEMS = {
    "Tables": ["results/trials/tables/predictivity.csv", "results/trials/tables/predictivity.html"],
    "Figures": [f"results/trials/figures/{kind}_sim.{ext}" for kind in ("over_time", "trajectories")
                for ext in ("png", "svg")],
    "Networks": ["results/trials/tables/networks.html"],
    "Data": ["results/provenance/trial_data_manifest.html"],
}
CAPTION_OPENINGS = {"predictivity": "Time-resolved predictivity of every layer", "networks": "The recurrent networks",
                    "trajectories_sim": "Population trajectories", "over_time_sim": "Predictivity over time",
                    "trial_data_manifest": "The data manifest of the time-resolved datasets"}


def snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "-c2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trial_report(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, zipfile.ZipFile, str]:
    """The tiny trial config run end to end, then its report as a zip: (workdir, zip, Snakemake's screen)."""
    workdir = tmp_path_factory.mktemp("trial_report")
    shutil.copy(repo / "tests" / "trials" / "tiny_trials.yaml", workdir / "config.yaml")
    run = snakemake(repo, workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    report = snakemake(repo, workdir, "--report", str(workdir / "report.zip"))
    assert report.returncode == 0, report.stderr[-4000:]
    return workdir, zipfile.ZipFile(workdir / "report.zip"), report.stdout + report.stderr


def report_variable(html: str, name: str) -> dict:
    """The JSON a Snakemake report page holds in ``<script id="name"> var name = {...};``."""
    found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.DOTALL)
    assert found, f"no {name} in the report page"
    return json.loads(found.group(1))


def embedded(archive: zipfile.ZipFile, filename: str) -> bytes:
    paths = [p for p in archive.namelist() if p.startswith("report/data/") and p.endswith(f"/{filename}")]
    assert len(paths) == 1, (filename, paths)
    return archive.read(paths[0])


def test_report_files_the_trial_outputs_under_time_resolved(trial_report):
    _, archive, screen = trial_report
    categories = report_variable(archive.read("report/report.html").decode(), "categories")
    assert {k: sorted(v) for k, v in categories["Time-resolved"].items()} == TRIAL_ITEMS
    assert sorted(categories["Provenance"]["Other"]) == ["results/provenance/config.yaml",
                                                          "results/provenance/software.html"]
    assert "Could not detect mimetype" not in screen, screen[-3000:]


def test_every_trial_item_has_its_caption(trial_report):
    _, archive, _ = trial_report
    results = report_variable(archive.read("report/report.html").decode(), "results")
    for items in TRIAL_ITEMS.values():
        for path in items:
            stem = Path(path).stem
            assert results[path]["caption"].startswith(f"<p>{CAPTION_OPENINGS[stem]}"), (path, results[path])
    assert "shuffled-time null" in results["results/trials/figures/over_time_sim.png"]["caption"]
    assert "bootstrap over neuroids" in results["results/trials/tables/predictivity.csv"]["caption"]


def test_report_embeds_the_trial_figures_tables_and_networks(trial_report):
    workdir, archive, _ = trial_report
    for kind in ("trajectories", "over_time"):
        assert embedded(archive, f"{kind}_sim.png")[:4] == b"\x89PNG"
        assert b"<svg" in embedded(archive, f"{kind}_sim.svg")
    table = pd.read_csv(workdir / "results/trials/tables/predictivity.csv")
    assert embedded(archive, "predictivity.csv") == (workdir / "results/trials/tables/predictivity.csv").read_bytes()
    page = embedded(archive, "predictivity.html").decode()
    assert page.count("<tr>") == len(table) + 1  # the header and every row
    networks = embedded(archive, "networks.html").decode()
    for model in ("reference", "rnn_untrained"):
        accuracy = json.loads((workdir / f"results/trials/models/{model}/performance.json").read_text())["accuracy"]
        assert f"<td>{model}</td>" in networks and f"<td>{accuracy:.3f}</td>" in networks


def test_the_data_page_lists_each_trial_asset_and_the_psth_units_per_region(trial_report):
    import xarray as xr

    workdir, archive, _ = trial_report
    gathered = json.loads((workdir / "results/provenance/trial_data_manifest.json").read_text())
    page = embedded(archive, "trial_data_manifest.html").decode()
    for name, record in gathered.items():
        manifest = json.loads((workdir / f"results/trials/datasets/{name}/manifest.json").read_text())
        assert record["manifest"]["assets"] == manifest["assets"] and manifest["assets"]
        with xr.open_dataset(workdir / f"results/trials/responses/{name}.nc", engine="h5netcdf") as psth:
            regions, counts = np.unique(psth["region"].values.astype(str), return_counts=True)
        assert record["units_kept"] == {str(r): int(c) for r, c in zip(regions, counts, strict=True)}
        assert f"<h2>{name}</h2>" in page
        for asset in manifest["assets"]:
            assert f"<td>{asset['path']}</td>" in page
        for region, count in record["units_kept"].items():
            assert f"<td>{region}</td><td>{count}</td>" in page
