"""Snakemake end to end with ``source: dandi`` against the loopback DANDI server; a second workflow shares the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dandi_server import DANDISET, NWB_PATH, VERSION, FakeArchive

pytestmark = pytest.mark.e2e


def config(api_url: str, **dataset) -> dict:
    return {
        "results": "results",
        "resources": "resources",
        "datasets": {"brain": {"source": "dandi", "dandiset": DANDISET, "version": VERSION, "api_url": api_url,
                               "assets": ["sub-sim/*.nwb"], "regions": ["V1", "V4", "IT"], **dataset}},
        "models": {"untrained": {"architecture": "alexnet_small", "objective": "untrained", "width": 16, "seed": 7,
                                 "layers": ["conv1", "fc"]}},
        "encoding": {"splits": {"preset": "brainscore", "n_splits": 5, "train_size": 0.8, "seed": 1},
                     "inner_folds": 3},
    }


def snakemake(repo: Path, workdir: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "-c2", *targets]
    env = {**os.environ, "DANDI_NO_ET": "1", "XDG_CACHE_HOME": str(workdir / ".xdg-cache")}
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="module")
def served(dandi_nwb: Path):
    server = FakeArchive()
    server.add(DANDISET, VERSION, NWB_PATH, dandi_nwb.read_bytes())
    yield server
    server.close()


@pytest.fixture(scope="module")
def dandi_run(repo: Path, served: FakeArchive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("dandi-e2e")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config(served.api_url)))
    run = snakemake(repo, workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_pipeline_runs_on_a_dandi_dataset(dandi_run, served, dandi_nwb):
    table = pd.read_csv(dandi_run / "results/tables/predictivity.csv")
    assert set(table["region"]) == {"V1", "V4", "IT"} and set(table["layer"]) == {"conv1", "fc"}
    assert len(table) == 2 * 3 and table["score"].notna().all()
    cached = dandi_run / "resources/dandi" / DANDISET / VERSION / NWB_PATH
    assert cached.read_bytes() == dandi_nwb.read_bytes()
    manifest = json.loads((dandi_run / "results/datasets/brain/manifest.json").read_text())
    # recorded relative to the workflow's directory, so the record survives moving the project folder
    assert manifest["source"] == "dandi"
    assert manifest["assets"][0]["local_path"] == cached.relative_to(dandi_run).as_posix()
    assert manifest["root"] == f"resources/dandi/{DANDISET}/{VERSION}"
    assert (dandi_run / "resources/dandi" / DANDISET / VERSION / "manifest.json").is_file()
    assert len(served.paths("/blobs/")) == 1


def test_second_workflow_sharing_the_cache_makes_no_request(repo, dandi_run, served, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(served.api_url,
                                                                cache_dir=str(dandi_run / "resources"))))
    before = len(served.requests)
    run = snakemake(repo, tmp_path, "results/datasets/brain/manifest.json")
    assert run.returncode == 0, run.stderr[-4000:]
    assert len(served.requests) == before
    manifest = json.loads((tmp_path / "results/datasets/brain/manifest.json").read_text())
    # a cache outside the workflow's directory is recorded by its absolute path
    assert manifest["assets"][0]["local_path"].startswith(str((dandi_run / "resources").resolve()))
    assert not (tmp_path / "resources").exists()


def test_bad_dandi_config_stops_before_any_job(repo, served, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config(served.api_url, version="draft")))
    before = len(served.requests)
    run = snakemake(repo, tmp_path, "-n")
    assert run.returncode != 0
    assert "datasets.brain.version: 'draft'" in run.stderr + run.stdout
    assert len(served.requests) == before


def test_report_shows_the_dandi_manifest(repo, dandi_run):
    run = snakemake(repo, dandi_run, "--report", str(dandi_run / "report.zip"))
    assert run.returncode == 0, run.stderr[-4000:]
    with zipfile.ZipFile(dandi_run / "report.zip") as report:
        names = report.namelist()
        shown = [n for n in names if n.endswith("/manifest.json")]
        assert shown, names
        assert json.loads(report.read(shown[0]))["dandiset"] == DANDISET
