"""Exact cache invalidation: which jobs each change reruns.

Unit tests of :mod:`neurofit.cache` (canonical params, the code each stage runs), then Snakemake on a
tiny config run once: each config change is read back with ``snakemake -n`` as a user would.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from neurofit import config as nf_config
from neurofit.cache import canonical, module_closure, stage_code_hash, stage_parts
from neurofit.cli import STAGES
from neurofit.simulate_defaults import simulation_settings

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "neurofit"


# -- canonical params -------------------------------------------------------------------------------
def test_canonical_params_do_not_depend_on_key_order_but_keep_list_order():
    a = {"b": {"y": 1, "x": [3, {"q": 1, "p": 2}]}, "a": (1, 2)}
    b = {"a": [1, 2], "b": {"x": [3, {"p": 2, "q": 1}], "y": 1}}
    assert repr(canonical(a)) == repr(canonical(b))  # Snakemake compares the repr of each param
    assert canonical(a) == a | {"a": [1, 2]}
    assert repr(canonical({"l": [2, 1]})) != repr(canonical({"l": [1, 2]}))


def test_model_settings_split_into_training_and_features():
    config = {"datasets": {}, "models": {
        "net": {"architecture": "alexnet_small", "epochs": 2, "layers": ["conv1"], "features": {"max_dims": 5}},
        "zoo": {"architecture": "torchvision:alexnet", "layers": ["features.0"], "features": {"max_dims": 5}}}}
    assert nf_config.training_settings(config, "net") == {"architecture": "alexnet_small", "epochs": 2}
    assert nf_config.feature_settings(config, "net") == {"architecture": "alexnet_small", "epochs": 2,
                                                         "features": {"max_dims": 5}}
    # an external model's performance probe reads its last listed layer: there layers decide training too
    assert nf_config.training_settings(config, "zoo") == {"architecture": "torchvision:alexnet",
                                                          "layers": ["features.0"]}


def test_mapping_order_in_the_config_means_nothing():
    regions = {"IT": "fc", "V1": "conv1", "V4": "conv3"}
    ordered = simulation_settings({"regions": regions})["regions"]
    assert list(ordered) == ["V1", "V4", "IT"]  # hierarchy order: by the depth of the layer read
    assert ordered == simulation_settings({"regions": dict(reversed(regions.items()))})["regions"]
    config = {"datasets": {"sim": {"source": "simulated", "simulate": {"regions": regions}}}}
    assert nf_config.regions(config, "sim") == ["V1", "V4", "IT"]


# -- the code each stage runs -------------------------------------------------------------------------
def _package_copy(tmp_path: Path) -> Path:
    root = tmp_path / "neurofit"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _closure_files(stage: str, root: Path) -> set[Path]:
    return set(module_closure(tuple(stage_parts(stage, root)[1]), root).values())


def test_a_stage_hash_changes_with_every_module_it_imports_and_no_other(tmp_path):
    root = _package_copy(tmp_path)
    files = sorted(p for p in root.rglob("*.py") if p.name != "cli.py")
    before = {stage: stage_code_hash(stage, root) for stage in STAGES}
    for path in files:
        original = path.read_text()
        path.write_text(original + "\n# an edit\n")
        try:
            for stage in STAGES:
                changed = stage_code_hash(stage, root) != before[stage]
                assert changed == (path in _closure_files(stage, root)), (stage, path.relative_to(root))
        finally:
            path.write_text(original)


def test_stage_closures_hold_what_the_hand_kept_lists_missed(tmp_path):
    def modules(stage):
        return set(module_closure(tuple(stage_parts(stage)[1])))

    assert "neurofit.neural.repeats" in modules("fit")  # average_repeats
    assert "neurofit.neural.responses" not in modules("fit")  # building responses is the responses stage's
    assert "neurofit.features" in modules("simulate")  # the reference network's preprocessing
    assert "neurofit.models.train" in modules("features")
    assert "neurofit.models.train" not in modules("fit")
    assert "neurofit.neural.responses" not in modules("train")


def test_editing_a_stage_in_cli_reruns_that_stage_and_the_shared_entry_reruns_all(tmp_path):
    root = _package_copy(tmp_path)
    cli = root / "cli.py"
    original = cli.read_text()
    before = {stage: stage_code_hash(stage, root) for stage in STAGES}

    def after(old: str, new: str) -> set[str]:
        assert original.count(old) == 1, old
        cli.write_text(original.replace(old, new))
        try:
            return {stage for stage in STAGES if stage_code_hash(stage, root) != before[stage]}
        finally:
            cli.write_text(original)

    assert after("def stage_ceiling(", "def stage_ceiling(  ") == {"ceiling"}
    assert after("def _best_layers(", "def _best_layers(  ") == {"figures", "figure_performance", "figure_neuroids",
                                                                 "figure_learning_rules"}
    assert after("def run_from_snakemake(", "def run_from_snakemake(  ") == set(STAGES)
    assert after("# -- command line", "# -- the command line") == set()  # main() runs in no rule


@pytest.mark.parametrize("stage", ["fit", "simulate", "stimuli", "tables"])
def test_the_static_walk_covers_what_python_imports(stage):
    """Import the modules a stage names, in a fresh interpreter: every neurofit module Python loads
    is one the hash covers."""
    direct = stage_parts(stage)[1]
    code = ("import importlib, json, sys\n"
            f"for name in {direct!r}:\n"
            "    try:\n        importlib.import_module(name)\n    except ModuleNotFoundError:\n        pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'neurofit')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    loaded = set(json.loads(run.stdout.splitlines()[-1]))
    assert loaded <= set(module_closure(tuple(direct))) | {"neurofit.cli"}, loaded - set(module_closure(tuple(direct)))


def test_unknown_stage_is_named():
    with pytest.raises(KeyError, match="no stage_nothing; stages: .*fit"):
        stage_code_hash("nothing")


# -- what snakemake -n plans after one change -----------------------------------------------------------
# Two untrained models (so a change to one shows the other untouched), small everything: about 30 jobs.
CONFIG = {
    "results": "results",
    "resources": "resources",
    "datasets": {"sim": {"source": "simulated",
                         "simulate": {"n_stimuli": 48, "n_repeats": 4, "units_per_region": 8, "reference_epochs": 1},
                         "responses": {"window_ms": [70, 170]}}},
    "models": {name: {"architecture": "alexnet_small", "objective": "untrained", "width": 8, "seed": seed,
                      "n_train": 200, "n_test": 100, "layers": ["conv1", "fc"]}
               for name, seed in (("first", 1), ("second", 2))},
    "encoding": {"metrics": ["ridge"], "splits": {"n_splits": 2, "train_size": 0.8}, "inner_folds": 2,
                 "alphas": {"n": 3}, "bootstrap": {"n": 10}, "permutations": {"n": 10}, "ceiling": {"n_splits": 2}},
}
# What any change of the table's inputs reruns downstream of the fits (and provenance records the config).
REPORT = {"tables": 1, "comparisons": 1, "figures": 1, "figure_performance": 1, "figure_neuroids": 1,
          "figure_learning_rules": 1, "table_pages": 1, "provenance": 1, "all": 1}


def _snakemake(repo: Path, workdir: Path, config: Path, *args: str,
               src: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Snakemake on ``config`` (with the package from ``src`` if given, else the one this test imports)."""
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(config), "-c2", *args]
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def finished_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("cache")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    _snakemake(repo, workdir, workdir / "config.yaml")
    return workdir


def _shuffled(value, rng: random.Random):
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    return value


def planned(repo: Path, workdir: Path, config: dict, src: Path | None = None) -> dict[str, int]:
    """The jobs ``snakemake -n`` would run with ``config``, per rule (empty: nothing to be done)."""
    path = workdir / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    dry = _snakemake(repo, workdir, path, "-n", "--quiet", "rules", src=src)
    rows = [line.split() for line in dry.stdout.splitlines()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit() and row[0] != "total"}


def changed(**edits) -> dict:
    """CONFIG with ``edits`` applied; keys are dotted paths (``models.first.layers``)."""
    config = json.loads(json.dumps(CONFIG))
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    return config


@pytest.mark.e2e
@pytest.mark.slow
def test_key_order_reruns_nothing(repo, finished_run):
    assert planned(repo, finished_run, CONFIG) == {}
    assert planned(repo, finished_run, yaml.safe_load(yaml.safe_dump(CONFIG))) == {}  # sorted keys
    assert planned(repo, finished_run, _shuffled(CONFIG, random.Random(0))) == {}


@pytest.mark.e2e
@pytest.mark.slow
def test_response_window_reruns_responses_ceiling_fits_and_report_not_stimuli_training_or_features(repo,
                                                                                                  finished_run):
    plan = planned(repo, finished_run, changed(**{"datasets.sim.responses.window_ms": [60, 160]}))
    assert plan == {"responses": 1, "ceiling": 1, "fit_sim": 2 * 2, "data_manifest": 1, **REPORT}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_new_layer_reruns_only_that_layers_features_and_fits(repo, finished_run):
    plan = planned(repo, finished_run, changed(**{"models.first.layers": ["conv1", "conv3", "fc"]}))
    assert plan == {"features": 1, "fit_sim": 1, **REPORT}  # one fit job per layer serves all 3 regions


@pytest.mark.e2e
@pytest.mark.slow
def test_feature_reduction_reruns_that_models_features_and_fits_not_its_training(repo, finished_run):
    plan = planned(repo, finished_run, changed(**{"models.first.features": {"reduce": "random", "max_dims": 20}}))
    assert plan == {"features": 2, "fit_sim": 2, **REPORT}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_training_setting_retrains_that_model_only(repo, finished_run):
    plan = planned(repo, finished_run, changed(**{"models.first.seed": 3}))
    assert plan == {"train": 1, "models_manifest": 1, "features": 2, "fit_sim": 2, **REPORT}


@pytest.mark.e2e
@pytest.mark.slow
def test_a_ceiling_setting_reruns_the_ceiling_and_tables_not_the_fits(repo, finished_run):
    plan = planned(repo, finished_run, changed(**{"encoding.ceiling.n_splits": 3}))
    assert plan == {"ceiling": 1, **REPORT}


@pytest.mark.e2e
@pytest.mark.slow
def test_fewer_resamples_rerun_the_fits_and_report_not_features_training_or_ceiling(repo, finished_run):
    plan = planned(repo, finished_run, changed(**{"encoding.bootstrap.n": 20, "encoding.permutations.n": 20}))
    assert plan == {"fit_sim": 2 * 2, **REPORT}


class _Named(dict):
    """Stands in for Snakemake's named lists (``smk.params.items()``)."""


def test_run_from_snakemake_rejects_params_the_stage_does_not_take(tmp_path):
    from neurofit.cli import run_from_snakemake

    smk = type("Smk", (), {})()
    smk.log, smk.wildcards, smk.input = [str(tmp_path / "log")], _Named(), _Named(responses_path="r.nc")
    smk.output = _Named(out=str(tmp_path / "c.nc"))
    smk.params = _Named(setings={"n_splits": 3}, code="abc")  # misspelt: would run on the defaults
    with pytest.raises(SystemExit):  # a failed stage exits 1; its traceback is in the job log
        run_from_snakemake("ceiling", smk)
    assert re.search(r"rule ceiling: params \['setings'\] are not parameters of stage_ceiling",
                     (tmp_path / "log").read_text())
    assert "setings" in (tmp_path / "log").read_text()


@pytest.mark.e2e
@pytest.mark.slow
def test_editing_a_module_reruns_the_rules_whose_stages_import_it(repo, finished_run, tmp_path):
    src = tmp_path / "src"
    _package_copy(src)
    figures = src / "neurofit" / "report" / "figures.py"
    figures.write_text(figures.read_text() + "\n# an edit\n")
    plan = planned(repo, finished_run, CONFIG, src=src)
    assert plan == {"figures": 1, "figure_performance": 1, "figure_neuroids": 1, "figure_learning_rules": 1, "all": 1}


def _pca_image_set(folder: Path, n: int = 8, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8)).save(folder / f"im{i}.png")


@pytest.mark.e2e
@pytest.mark.slow
def test_editing_an_image_of_the_pca_image_set_reruns_that_models_features(repo, finished_run, tmp_path):
    workdir = tmp_path / "run"  # a copy: the finished run stays as the other tests expect it
    shutil.copytree(finished_run, workdir, symlinks=True)
    _pca_image_set(workdir / "pca_images")
    config = changed(**{"models.first.features": {"reduce": "pca_images", "max_dims": 5, "pca_images": "pca_images"}})
    (workdir / "pca.yaml").write_text(yaml.safe_dump(config))
    _snakemake(repo, workdir, workdir / "pca.yaml")
    assert planned(repo, workdir, config) == {}
    from PIL import Image

    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(workdir / "pca_images" / "im3.png")
    plan = planned(repo, workdir, config)
    assert plan == {"features": 2, "fit_sim": 2, **{k: v for k, v in REPORT.items() if k != "provenance"}}
