"""The model part of the config schema: the example grid validates, bad entries are named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurofit import config as nf_config
from neurofit.models.catalog import layer_names
from neurofit.models.train import ModelSpec

REPO = Path(__file__).resolve().parents[2]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _grid() -> dict:
    return yaml.safe_load((REPO / "config" / "examples" / "grid.yaml").read_text())


def test_grid_validates_and_spans_the_three_choices() -> None:
    config = _grid()
    validate(config, SCHEMA, set_default=True)
    specs = [ModelSpec.from_config(entry) for entry in config["models"].values()]
    assert {s.architecture for s in specs} == {"alexnet_small", "resnet_small", "cornet_small"}
    assert {s.objective for s in specs} == {"supervised", "simclr", "untrained"}
    assert {s.learning_rule for s in specs} == {"backprop", "feedback_alignment", "sign_symmetry"}
    for name, spec in zip(config["models"], specs, strict=True):
        assert nf_config.layers(config, name) == layer_names(spec.architecture, config["models"][name])
        assert not spec.extra


@pytest.mark.parametrize(("entry", "message"), [
    ({"objective": "byol"}, "byol"),
    ({"learning_rule": "hebbian"}, "hebbian"),
    ({"architecture": "torchvision:resnet18"}, "layers"),
    ({"features": {"reduce": "pca"}}, "max_dims"),
    ({"widht": 8}, "widht"),
])
def test_bad_model_entries_are_named(entry: dict, message: str) -> None:
    config = copy.deepcopy(_grid())
    config["models"] = {"m": entry}
    with pytest.raises(WorkflowError, match=message):
        validate(config, SCHEMA, set_default=True)


def test_external_architecture_with_layers_validates() -> None:
    config = copy.deepcopy(_grid())
    config["models"] = {"m": {"architecture": "timm:resnet18", "layers": ["layer4"], "weights": "w.pt",
                              "num_outputs": 1000, "features": {"reduce": "random", "max_dims": 100,
                                                                "stimulus_degrees": 4, "model_degrees": 8}}}
    validate(config, SCHEMA, set_default=True)
    assert nf_config.layers(config, "m") == ["layer4"]
