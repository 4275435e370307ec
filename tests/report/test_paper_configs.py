"""The paper configs: each validates and dry-runs from a clean folder without network; the two offline
ones run end to end on a reduced setting (the paper config with smaller sizes), produce every figure,
and their Snakemake report builds and embeds the data manifest."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[2]
# trials_*.yaml are trial-structured configs, tested in tests/trials/test_trial_dag.py
PAPER = sorted(p for p in (REPO / "config" / "paper").glob("*.yaml") if not p.stem.startswith("trials_"))
OFFLINE = ["yamins2014_performance_vs_predictivity", "richards2019_learning_rules"]
FIGURES = ["best_layer", "performance_vs_predictivity", "learning_rules", "neuroid_scores_sim_ridge"]
# Any HTTP(S) request from a dry run goes to a closed port and fails: a dry run must not need network.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def snakemake(workdir: Path, configfile: Path, *args: str, env: dict[str, str] | None = None,
              timeout: int = 900) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_there_are_three_paper_configs():
    assert {p.stem for p in PAPER} == {*OFFLINE, "allen_visual_coding_hierarchy"}


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_validates_and_writes_under_its_own_folder(path):
    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    assert config["results"] == f"results/{path.stem}"


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_dry_runs_without_network(path, tmp_path):
    dry = snakemake(tmp_path, path, "-n", "--quiet", "rules", env=NO_NETWORK, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    # the fit rules are one per dataset, fit_<dataset>
    jobs = {re.sub(r"^fit_.*", "fit", line.split()[0]) for line in dry.stdout.splitlines() if len(line.split()) == 2}
    assert jobs & {"train", "train_checkpoints"}  # checkpoints of one run train in train_checkpoints
    assert {"fit", "tables", "figures", "figure_performance", "figure_learning_rules", "figure_neuroids",
            "provenance", "data_manifest"} <= jobs
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def shrink(config: dict) -> dict:
    """The paper config at test size: fewer stimuli, units, layers and splits; the models, learning
    rules, epochs, training sets and regions stay as the paper config has them (the papers' claims
    are about task performance, which a smaller training set does not reach: at 128 training images
    even backprop stays at chance after 4 epochs)."""
    for dataset in config["datasets"].values():
        if dataset["source"] == "simulated":
            dataset["simulate"] = {**dataset.get("simulate", {}), "n_stimuli": 48, "n_repeats": 4,
                                   "units_per_region": 8}
    for model in config["models"].values():
        model.update(layers=["fc"])
    config["encoding"].update(splits={"preset": "brainscore", "n_splits": 3, "train_size": 0.8, "seed": 1},
                              inner_folds=2, alphas={"min_exp": -2, "max_exp": 6, "n": 5})
    return config


def performance(paper_runs: Path, name: str, model: str) -> dict:
    return json.loads((paper_runs / "results" / name / "models" / model / "performance.json").read_text())


def data_uris(report: Path) -> dict[str, bytes]:
    """The files a self-contained Snakemake report embeds, by file name."""
    found = re.findall(r'"data_uri": "data:[^;"]+(?:;charset=[^;"]+)?;filename=([^;"]+);base64,([^"]+)"',
                       report.read_text())
    return {name: base64.b64decode(data) for name, data in found}


@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory):
    """Both offline paper configs, reduced, run in one folder (they share the simulated dandiset under
    resources/ and write under their own results/<name>/), each followed by its report."""
    workdir = tmp_path_factory.mktemp("paper")
    for name in OFFLINE:
        config = shrink(yaml.safe_load((REPO / "config" / "paper" / f"{name}.yaml").read_text()))
        configfile = workdir / f"{name}.yaml"
        configfile.write_text(yaml.safe_dump(config))
        run = snakemake(workdir, configfile, "-c2")
        assert run.returncode == 0, run.stderr[-4000:]
        report = snakemake(workdir, configfile, "--report", f"results/{name}/report.html", timeout=300)
        assert report.returncode == 0, report.stderr[-3000:]
    return workdir


@pytest.mark.e2e
@pytest.mark.parametrize("name", OFFLINE)
def test_every_figure_is_produced(paper_runs, name):
    figures = paper_runs / "results" / name / "figures"
    config = yaml.safe_load((paper_runs / f"{name}.yaml").read_text())
    models = [f"{model}_e{k}" for model, entry in config["models"].items()
              for k in entry.get("checkpoints", [])]
    models += [model for model, entry in config["models"].items() if "checkpoints" not in entry]
    expected = FIGURES + [f"heatmap_{model}" for model in models]  # a model with checkpoints: one per checkpoint
    for figure in expected:
        for ext in ("png", "svg"):
            assert (figures / f"{figure}.{ext}").stat().st_size > 1000, (figure, ext)
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(expected)


@pytest.mark.e2e
def test_yamins_correlates_performance_with_predictivity(paper_runs):
    """Yamins et al. 2014: held-out accuracy rises with training, and so does IT predictivity (the
    correlation over the five models is positive). Five models give a wide CI, so only the sign of r is
    asserted; the hidden network (resnet_small) differs from every candidate (alexnet_small)."""
    name = "yamins2014_performance_vs_predictivity"
    config = yaml.safe_load((paper_runs / f"{name}.yaml").read_text())
    hidden = config["datasets"]["sim"]["simulate"]["architecture"]
    assert all(model["architecture"] != hidden for model in config["models"].values())
    correlations = pd.read_csv(paper_runs / "results" / name / "tables" / "performance_vs_predictivity.csv")
    assert set(correlations["region"]) == {"V4", "IT"}
    it = correlations[correlations["region"] == "IT"].iloc[0]
    assert it["n_models"] == 5
    assert it["r"] > 0, correlations
    assert it["ci_low"] <= it["r"] <= it["ci_high"]
    accuracy = {epochs: performance(paper_runs, name, f"alexnet_e{epochs}")["heldout_accuracy"]
                for epochs in (0, 1, 2, 4, 8)}  # one training run's checkpoints
    chance = performance(paper_runs, name, "alexnet_e0")["chance"]
    assert accuracy[8] >= 2 * chance and accuracy[8] > accuracy[0], accuracy


@pytest.mark.e2e
def test_richards_learning_rules_learn(paper_runs):
    """Richards et al. 2019 (and Lillicrap et al. 2016, Liao et al. 2016): every learning rule trains
    the network well above chance, at least twice chance on held-out images, with backprop at least
    as good as the approximations to it."""
    name = "richards2019_learning_rules"
    rules = ("backprop", "feedback_alignment", "sign_symmetry")
    accuracy = {rule: performance(paper_runs, name, rule)["heldout_accuracy"] for rule in rules}
    chance = performance(paper_runs, name, "backprop")["chance"]
    for rule in rules:
        assert accuracy[rule] >= 2 * chance, (rule, accuracy, chance)
    assert accuracy["backprop"] >= max(accuracy["feedback_alignment"], accuracy["sign_symmetry"]) - 0.05, accuracy


@pytest.mark.e2e
def test_richards_compares_the_three_learning_rules(paper_runs):
    svg = (paper_runs / "results" / "richards2019_learning_rules" / "figures" / "learning_rules.svg").read_text()
    for rule in ("backprop", "feedback_alignment", "sign_symmetry"):
        assert f">{rule}<" in svg or f"{rule}</" in svg
    for region in ("V1", "V4", "IT"):
        assert region in svg


@pytest.mark.e2e
@pytest.mark.parametrize("name", OFFLINE)
def test_report_embeds_figures_tables_manifest_config_and_software(paper_runs, name):
    results = paper_runs / "results" / name
    embedded = data_uris(results / "report.html")
    for figure in FIGURES:
        assert embedded[f"{figure}.png"][:4] == b"\x89PNG"
    assert b"<table>" in embedded["predictivity.html"]
    manifest = json.loads((results / "datasets" / "sim" / "manifest.json").read_text())
    page = embedded["data_manifest.html"].decode()
    assert manifest["dandiset"] in page and manifest["version"] in page
    for asset in manifest["assets"]:
        assert asset["path"] in page and asset["digest"]["sha256"] in page
    assert yaml.safe_load(embedded["config.yaml"]) == yaml.safe_load((results / "provenance" / "config.yaml")
                                                                      .read_text())
    assert b"numpy" in embedded["software.html"]
    html = (results / "report.html").read_text()
    assert "Yamins et al. 2014" in html and "Richards et al. 2019" in html  # the captions


@pytest.mark.e2e
def test_a_second_run_does_nothing(paper_runs):
    name = OFFLINE[0]
    again = snakemake(paper_runs, paper_runs / f"{name}.yaml", "-c2", "-n")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Nothing to be done" in again.stdout + again.stderr
