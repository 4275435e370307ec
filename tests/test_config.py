"""Config validation: every shipped config is valid; a bad key is named in the error."""

from __future__ import annotations

import re
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


@pytest.mark.parametrize(("section", "name"), [("models", ".."), ("models", "."), ("datasets", ".."),
                                               ("datasets", "a/b"), ("models", "../x"), ("datasets", ".hidden"),
                                               ("models", "-rf")])
def test_names_that_are_not_plain_folder_names_are_refused(section, name):
    config = minimal()
    config[section][name] = config[section].pop(next(iter(config[section])))
    with pytest.raises(nf_config.ConfigError, match=rf"{section}: '{re.escape(name)}' does not match"):
        nf_config.check(config, SCHEMA)


def test_region_and_layer_names_are_plain_folder_names():
    config = minimal()
    config["datasets"]["sim"]["regions"] = ["V1", "../../x"]
    config["models"]["m"]["layers"] = ["features.3", "/abs"]
    with pytest.raises(nf_config.ConfigError) as error:
        nf_config.check(config, SCHEMA)
    assert "datasets.sim.regions.1: '../../x' does not match" in str(error.value)
    assert "models.m.layers.1: '/abs' does not match" in str(error.value)


def test_results_that_climb_out_of_the_working_directory_warn(tmp_path):
    config = minimal() | {"results": "../elsewhere/results", "resources": "resources/../../r"}
    config["datasets"]["sim"]["cache_dir"] = "../cache"
    warnings = nf_config.climbing_paths(config)
    assert [w.split(":")[1].strip() for w in warnings] == ["results", "resources", "datasets.sim.cache_dir"]
    assert "'../elsewhere/results' climbs out of the working directory" in warnings[0]
    assert nf_config.climbing_paths(minimal() | {"results": "results/../results", "resources": str(tmp_path)}) == []
