"""Snakemake end to end on a tiny config in a temp dir: the table, the ground truth, the no-op rerun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from neurofit.report.tables import COLUMNS

pytestmark = pytest.mark.e2e


def snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "-c2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tiny_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    workdir = tmp_path_factory.mktemp("tiny")
    shutil.copy(repo / "tests" / "e2e" / "tiny.yaml", workdir / "config.yaml")
    run = snakemake(repo, workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir, run


def test_table_has_the_documented_schema(tiny_run):
    workdir, _ = tiny_run
    table = pd.read_csv(workdir / "results/tables/predictivity.csv")
    assert list(table.columns)[: len(COLUMNS)] == COLUMNS  # documented columns first, extras after
    assert set(table["model"]) == {"reference", "untrained"}
    assert set(table["region"]) == {"V1", "V4", "IT"}
    assert len(table) == 2 * 5 * 3  # models x layers x regions, one metric
    assert table[["raw", "ceiling", "score"]].notna().all().all()
    assert ((table["ci_low"] <= table["score"]) & (table["score"] <= table["ci_high"])).all()
    assert pd.read_parquet(workdir / "results/tables/predictivity.parquet").equals(table)
    for figure in ("best_layer.png", "best_layer.svg", "heatmap_reference.png", "heatmap_untrained.svg"):
        assert (workdir / "results/figures" / figure).stat().st_size > 1000


def test_reference_model_recovers_the_true_hierarchy(tiny_run):
    workdir, _ = tiny_run
    truth = json.loads(next((workdir / "resources/simulated").glob("sim-*/ground_truth.json")).read_text())
    order = truth["layer_order"]
    table = pd.read_csv(workdir / "results/tables/predictivity.csv")
    reference = table[table["model"] == "reference"]
    best = {region: reference.loc[rows["score"].idxmax(), "layer"] for region, rows in reference.groupby("region")}
    for region, true_layer in truth["region_layer"].items():
        assert abs(order.index(best[region]) - order.index(true_layer)) <= 1, (region, best[region], true_layer)
    assert order.index(best["V1"]) < order.index(best["IT"])


def test_reference_beats_untrained_control_in_every_region(tiny_run):
    workdir, _ = tiny_run
    best = pd.read_csv(workdir / "results/tables/best_layer.csv").pivot(index="region", columns="model",
                                                                         values="score")
    assert (best["reference"] > best["untrained"]).all(), best


def test_second_run_does_nothing(repo, tiny_run):
    workdir, _ = tiny_run
    again = snakemake(repo, workdir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr


def test_changing_one_model_reruns_only_that_model(repo, tiny_run):
    workdir, _ = tiny_run
    config = (workdir / "config.yaml").read_text().replace("seed: 7", "seed: 8")
    (workdir / "changed.yaml").write_text(config)
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "changed.yaml"), "-n", "--quiet", "rules"],
        capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    counts = {line.split()[0]: int(line.split()[1]) for line in dry.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts.get("train") == 1  # the untrained control only, not the reference
    assert counts.get("features") == 5 and counts.get("fit_sim") == 5  # one fit job per layer for all 3 regions
    assert "simulate" not in counts and "responses" not in counts


def test_report_prints_no_coroutine_or_mimetype_warnings(repo, tiny_run):
    workdir, _ = tiny_run
    report = snakemake(repo, workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0, report.stderr[-2000:]
    screen = report.stdout + report.stderr
    assert "was never awaited" not in screen and "Could not detect mimetype" not in screen, screen[-3000:]
    assert (workdir / "report.html").stat().st_size > 10_000
