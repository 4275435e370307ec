"""Fixtures of the trial-structured pipeline: the real DANDI:000006 session and a small simulated trial dandiset
run through every stage (simulate -> responses -> train -> features -> fit -> table)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from trials_testutil import FILE_000006, SIM_RESPONSES, SMALL_TRIAL_SIMULATION, TASK_MAP


@pytest.fixture(scope="session")
def alm_nwb(shared_data: Path) -> Path:
    path = shared_data / FILE_000006
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


@pytest.fixture(scope="session")
def trial_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The simulated trial dandiset scored with its hidden network, an untrained RNN of the same architecture and
    a GRU trained with BPTT; returns the table and the ground truth."""
    from neurofit import cli

    out = tmp_path_factory.mktemp("trials")
    cli.stage_trial_simulate(str(out / "sim"), SMALL_TRIAL_SIMULATION)
    cli.stage_manifest({"source": "simulated"}, str(out / "manifest.json"), local_root=str(out / "sim" / "dandiset"))
    cli.stage_trial_responses(str(out / "manifest.json"), SIM_RESPONSES, ["ALM", "vS1"], {"n_splits": 5},
                              str(out / "psth.nc"), str(out / "summary.json"))
    models = {"reference": None,
              "untrained": {"hidden": 32, "learning_rule": "none", "task_settings": {"strengths": [0.5, 1.0]}},
              "gru": {"architecture": "gru", "hidden": 16, "steps": 150, "task_settings": {"strengths": [0.5, 1.0]}}}
    for name, settings in models.items():
        extra = {"weights_in": str(out / "sim" / "reference_model.pt")} if settings is None else {}
        cli.stage_trial_train(settings or {}, str(out / f"{name}.pt"), str(out / f"{name}.json"), **extra)
        cli.stage_trial_features(str(out / f"{name}.pt"), str(out / "psth.nc"), TASK_MAP, str(out / f"{name}.nc"))
        cli.stage_trial_fit(str(out / f"{name}.nc"), str(out / "psth.nc"), {"bootstrap": 200, "n_null": 2},
                            ["ALM", "vS1"], "sim", name, str(out / f"{name}.csv"), str(out / f"{name}_time.nc"))
    cli.stage_trial_tables([str(out / f"{n}.csv") for n in models], {n: str(out / f"{n}.json") for n in models},
                           str(out / "predictivity.csv"))
    return {"out": out, "table": pd.read_csv(out / "predictivity.csv"),
            "truth": json.loads((out / "sim" / "ground_truth.json").read_text()), "models": list(models)}
