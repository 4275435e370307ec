"""The torch-free layer catalogue agrees with the built networks."""

from __future__ import annotations

import pytest
import torch

from neurofit.models.architectures import build
from neurofit.models.catalog import layer_names


@pytest.mark.parametrize("params", [{}, {"depth": 2}, {"depth": 3, "times": 3}])
def test_layer_names_match_model_blocks(architecture: str, params: dict) -> None:
    model = build(architecture, num_outputs=5, seed=0, width=4, image_size=16, **params)
    names = layer_names(architecture, params)
    assert model.feature_layers == names
    modules = dict(model.named_modules())
    assert all(name in modules for name in names)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 5)


def test_depth_changes_the_network() -> None:
    assert layer_names("alexnet_small", {"depth": 6})[-2:] == ["conv6", "fc"]
    assert layer_names("resnet_small", {"depth": 2}) == ["stem", "block1", "block2", "avgpool"]
    shallow = build("cornet_small", 5, 0, width=4, depth=1)
    deep = build("cornet_small", 5, 0, width=4, depth=2)
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in shallow.parameters())


def test_unknown_and_external_architectures_need_names() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        layer_names("vgg")
    with pytest.raises(ValueError, match="'layers'"):
        layer_names("torchvision:resnet18")
    assert layer_names("timm:resnet18", {"layers": ["layer1"]}) == ["layer1"]
    with pytest.raises(ValueError, match="depth >= 2"):
        layer_names("alexnet_small", {"depth": 1})
