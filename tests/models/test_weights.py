"""Weights: a saved state dict loads back identically; code-carrying or mismatched files are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from models_testutil import state_hash

from neurofit.models.train import ModelSpec
from neurofit.models.weights import WeightsError, load_checkpoint, load_weights, save_weights


def test_state_dict_round_trip(tmp_path: Path, architecture: str) -> None:
    spec = ModelSpec(architecture=architecture, width=4, image_size=16, seed=2)
    model = spec.build()
    save_weights(model, tmp_path / "w.pt")
    other = ModelSpec(architecture=architecture, width=4, image_size=16, seed=9).build()
    assert state_hash(other) != state_hash(model)
    loaded = load_weights(other, tmp_path / "w.pt")
    assert state_hash(loaded) == state_hash(model)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    loaded.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


class _RunsCode:
    """Unpickling this calls os.system: what a malicious weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_carrying_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"conv1.0.weight": torch.zeros(1), "payload": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError, match="evil.pt: refused to load"):
        load_weights(ModelSpec(width=4).build(), path)
    with pytest.raises(WeightsError, match="refused"):
        load_checkpoint(path, "{}")
    assert not marker.exists()
    # The payload is real: an unsafe load runs it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_wrong_keys_or_shapes_are_refused(tmp_path: Path) -> None:
    model = ModelSpec(width=4, image_size=16).build()
    state = model.state_dict()
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match=r"unexpected keys \['extra.weight'\]"):
        load_weights(model, tmp_path / "extra.pt")
    torch.save(ModelSpec(width=8, image_size=16).build().state_dict(), tmp_path / "wide.pt")
    with pytest.raises(WeightsError, match="shape mismatches.*conv1.0.weight"):
        load_weights(model, tmp_path / "wide.pt")
    torch.save(ModelSpec(architecture="resnet_small", width=4).build().state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(WeightsError, match="missing keys"):
        load_weights(model, tmp_path / "resnet.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="expected a state dict"):
        load_weights(model, tmp_path / "list.pt")
