"""Checkpoints of one training run as model variants: the config expansion and the DAG it makes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate
from snakemake_testutil import planned_jobs

from neurofit import config as nf_config
from neurofit.models.train import ModelSpec

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")

CONFIG = {
    "results": "results",
    "resources": "resources",
    "datasets": {"sim": {"source": "simulated", "simulate": {"n_stimuli": 48, "n_repeats": 2,
                                                             "units_per_region": 4}}},
    "models": {
        "run": {"architecture": "alexnet_small", "objective": "supervised", "width": 4, "image_size": 16,
                "checkpoints": [0, 1, 2, 4], "seed": 1},
        "untrained": {"architecture": "alexnet_small", "objective": "untrained", "width": 4, "seed": 1},
    },
}


def test_variants_replace_their_run_in_the_scored_models() -> None:
    config = copy.deepcopy(CONFIG)
    validate(config, SCHEMA, set_default=True)
    assert nf_config.scored_models(config) == ["run_e0", "run_e1", "run_e2", "run_e4", "untrained"]
    assert nf_config.trained_models(config) == ["untrained"]
    assert nf_config.checkpoint_runs(config) == {"run": [0, 1, 2, 4]}
    settings = nf_config.model_settings(config, "run_e2")
    assert settings["epochs"] == 2 and settings["checkpoint_of"] == "run" and "checkpoints" not in settings
    assert ModelSpec.from_config(settings).epochs == 2
    assert nf_config.model_settings(config, "run")["epochs"] == 4  # the run trains to its last checkpoint
    assert nf_config.layers(config, "run_e4") == ["conv1", "conv2", "conv3", "conv4", "fc"]
    assert nf_config.variant_of(config, "run_e3") is None  # not a listed checkpoint


@pytest.mark.parametrize(("edit", "message"), [
    ({"epochs": 8}, "last is the run's `epochs`"),
    ({"objective": "untrained"}, "only a model that is trained here"),
])
def test_bad_checkpoint_runs_are_named(edit: dict, message: str) -> None:
    config = copy.deepcopy(CONFIG)
    config["models"]["run"].update(edit)
    with pytest.raises(ValueError, match=message):
        nf_config.scored_models(config)


def test_a_variant_name_taken_by_an_entry_is_refused() -> None:
    config = copy.deepcopy(CONFIG)
    config["models"]["run_e1"] = {"objective": "untrained"}
    with pytest.raises(ValueError, match="run_e1"):
        nf_config.scored_models(config)
    config = copy.deepcopy(CONFIG)
    config["models"]["run"]["checkpoints"] = []
    with pytest.raises(WorkflowError, match="checkpoints"):
        validate(config, SCHEMA, set_default=True)


def test_dry_run_has_one_training_job_and_a_feature_set_per_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    counts = planned_jobs(tmp_path, tmp_path / "config.yaml")
    assert counts["train_checkpoints"] == 1  # one run for the four variants
    assert counts["train"] == 1  # the untrained control
    assert counts["checkpoint_variant"] == 4
    assert counts["features"] == 5 * 5  # (4 variants + control) x 5 layers, one stimulus set
