"""Snakemake end to end on a tiny config in a temp dir: the table, the ground truth, the no-op rerun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from snakemake_testutil import planned_jobs

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
    assert set(table["metric"]) == {"factorised", "ridge"}
    assert len(table) == 2 * 5 * 3 * 2  # models x layers x regions x metrics
    assert table[["raw", "ceiling", "score"]].notna().all().all()
    assert ((table["ci_low"] <= table["score"]) & (table["score"] <= table["ci_high"])).all()
    assert pd.read_parquet(workdir / "results/tables/predictivity.parquet").equals(table)
    for figure in ("best_layer.png", "best_layer.svg", "heatmap_reference.png", "heatmap_untrained.svg"):
        assert (workdir / "results/figures" / figure).stat().st_size > 1000


def ground_truth(workdir: Path) -> dict:
    return json.loads(next((workdir / "resources/simulated").glob("sim-*/ground_truth.json")).read_text())


# Known misses of the default simulation (README "What the default run recovers"), as strict expected failures
# naming the numbers: none now. V1 once missed the control (random conv1 filters spanned the hidden network's
# conv1 on low-contrast 1/f clutter) and V4 the ceiling (conv3's 64 channels from 216 noisy stimuli); the default
# config's simulate block and the factorised readout's mask refinement recover both.
MISSES: dict[str, dict[str, str]] = {"ceiling": {}, "layer": {}, "control": {}}
REGIONS = ["V1", "V4", "IT"]
# Each region is scored by the encoding model of its simulated readout's form (README "What the default run
# recovers"): V1 and V4 units read a Gaussian receptive field x a few channels of a conv map, which the factorised
# readout fits with channels + 3 parameters; IT units read a dense mixture of a vector layer, which is ridge's form.
RECOVERY_METRIC = {"V1": "factorised", "V4": "factorised", "IT": "ridge"}


# A miss whose margin another BLAS or thread count could tip: not strict (none now).
NOT_STRICT: set[tuple[str, str]] = set()


def regions(check: str) -> list:
    return [pytest.param(r, marks=pytest.mark.xfail(strict=(check, r) not in NOT_STRICT, reason=MISSES[check][r]))
            if r in MISSES[check] else r for r in REGIONS]


@pytest.mark.parametrize("region", regions("ceiling"))
def test_reference_scores_at_ceiling_at_its_true_layer(tiny_run, region):
    """The simulator's truth is recovered: the hidden network's true layer explains the region's
    explainable variance (ceiling-normalised score with a CI that contains 1)."""
    workdir, _ = tiny_run
    true_layer = ground_truth(workdir)["region_layer"][region]
    table = pd.read_csv(workdir / "results/tables/predictivity.csv")
    table = table[table["metric"] == RECOVERY_METRIC[region]]
    row = table[(table["model"] == "reference") & (table["layer"] == true_layer) & (table["region"] == region)]
    assert len(row) == 1
    assert row["ci_low"].iloc[0] <= 1.0 <= row["ci_high"].iloc[0], row.to_dict("records")


@pytest.mark.parametrize("region", regions("layer"))
def test_layer_chosen_on_training_stimuli_is_the_true_one(tiny_run, region):
    """In more than half of the outer splits (not just the most frequent choice)."""
    workdir, _ = tiny_run
    true_layer = ground_truth(workdir)["region_layer"][region]
    best = pd.read_csv(workdir / "results/tables/best_layer.csv")
    best = best[best["metric"] == RECOVERY_METRIC[region]]
    row = best[(best["model"] == "reference") & (best["region"] == region)].iloc[0]
    choices = row["layer_choices"].split(",")
    assert choices.count(true_layer) > len(choices) / 2, row.to_dict()


@pytest.mark.parametrize("region", regions("control"))
def test_reference_beats_untrained_control_with_separate_cis(tiny_run, region):
    workdir, _ = tiny_run
    best = pd.read_csv(workdir / "results/tables/best_layer.csv")
    best = best[best["metric"] == RECOVERY_METRIC[region]].set_index(["region", "model"])
    reference, untrained = best.loc[(region, "reference")], best.loc[(region, "untrained")]
    assert reference["ci_low"] > untrained["ci_high"], (reference.to_dict(), untrained.to_dict())


def test_second_run_does_nothing(repo, tiny_run):
    workdir, _ = tiny_run
    again = snakemake(repo, workdir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr


def test_changing_one_model_reruns_only_that_model(repo, tiny_run):
    workdir, _ = tiny_run
    config = (workdir / "config.yaml").read_text().replace("seed: 7", "seed: 8")
    (workdir / "changed.yaml").write_text(config)
    counts = planned_jobs(workdir, workdir / "changed.yaml")
    assert counts.get("train") == 1  # the untrained control only, not the reference
    assert counts.get("features") == 5 and counts.get("fit_sim") == 10  # one fit job per layer and metric
    assert "simulate" not in counts and "responses" not in counts


def test_report_prints_no_coroutine_or_mimetype_warnings(repo, tiny_run):
    workdir, _ = tiny_run
    report = snakemake(repo, workdir, "--report", str(workdir / "report.html"))
    assert report.returncode == 0, report.stderr[-2000:]
    screen = report.stdout + report.stderr
    assert "was never awaited" not in screen and "Could not detect mimetype" not in screen, screen[-3000:]
    assert (workdir / "report.html").stat().st_size > 10_000
