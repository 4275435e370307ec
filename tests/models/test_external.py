"""torchvision:/timm: architectures (optional packages): built without download, weights from a local
file, features by module name, and any learning rule. Skipped where the package does not import
(e.g. torchvision from PyPI beside the CPU build of torch 2.13 fails with 'operator torchvision::nms
does not exist')."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from neurofit.features import extract_layer, preprocess_for
from neurofit.models.rules import RuleConv2d, apply_learning_rule
from neurofit.models.train import ModelSpec
from neurofit.models.weights import load_weights, save_weights

CASES = {"torchvision": ("torchvision:resnet18", ["layer1", "layer4", "avgpool"]),
         "timm": ("timm:resnet18", ["layer1", "layer4", "global_pool"])}


@pytest.mark.parametrize("package", list(CASES))
def test_external_architecture(package: str, tmp_path: Path) -> None:
    try:
        importlib.import_module(package)
    except Exception as error:  # a broken install raises more than ImportError
        pytest.skip(f"{package} does not import here: {error}")
    architecture, layers = CASES[package]
    spec = ModelSpec(architecture=architecture, layers=layers, num_outputs=10, image_size=32)
    model = spec.build()
    assert model.feature_layers == layers
    save_weights(model, tmp_path / "w.pt")
    loaded = load_weights(ModelSpec(architecture=architecture, layers=layers, num_outputs=10, seed=3).build(),
                          tmp_path / "w.pt")
    stimuli = xr.DataArray(np.random.default_rng(0).random((4, 32, 32), dtype=np.float32),
                           dims=("stimulus", "y", "x"), coords={"stimulus_id": ("stimulus", list("abcd"))})
    features = extract_layer(loaded, layers[-1], stimuli, preprocess_for(architecture, 32))
    assert features.shape == (4, 512)
    apply_learning_rule(model, "feedback_alignment", 0)
    assert any(isinstance(m, RuleConv2d) for m in model.modules())
    model.train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
