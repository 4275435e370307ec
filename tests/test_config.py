"""Config validation: every shipped config is valid; a bad key is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurofit import config as nf_config

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = sorted(Path(__file__).resolve().parents[1].glob("config/**/*.yaml")) + [
    Path(__file__).resolve().parent / "e2e" / "tiny.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    nf_config.check(yaml.safe_load(path.read_text()), SCHEMA)


def minimal() -> dict:
    return {"datasets": {"sim": {"source": "simulated"}},
            "models": {"m": {"architecture": "alexnet_small", "objective": "untrained"}}}


@pytest.mark.parametrize(("edit", "named"), [
    (lambda c: c["models"]["m"].update(objectiv="supervised"), "models.m: Additional properties"),
    (lambda c: c.update(encoding={"normalisation": "r/d"}), "encoding.normalisation: 'r/d'"),
    (lambda c: c["datasets"].update(real={"source": "local"}), "datasets.real: 'path' is a required"),
    (lambda c: c["models"]["m"].update(epochs=-1), "models.m.epochs: -1 is less than"),
    (lambda c: c.pop("models"), "<top level>: 'models' is a required property"),
])
def test_bad_config_names_the_key(edit, named):
    config = minimal()
    edit(config)
    with pytest.raises(nf_config.ConfigError, match=None) as error:
        nf_config.check(config, SCHEMA)
    assert named in str(error.value)


def test_reference_model_inherits_the_simulator_architecture():
    config = minimal()
    config["datasets"]["sim"]["simulate"] = {"width": 8, "image_size": 40}
    config["models"]["ref"] = {"weights": "simulated:sim"}
    settings = nf_config.model_settings(config, "ref")
    assert (settings["width"], settings["image_size"], settings["objective"]) == (8, 40, "reference")
    assert nf_config.regions(config, "sim") == ["V1", "V4", "IT"]


def test_reference_to_a_missing_dataset_is_refused():
    config = minimal()
    config["models"]["ref"] = {"weights": "simulated:nope"}
    with pytest.raises(ValueError, match="models.ref.weights"):
        nf_config.model_settings(config, "ref")
