"""Saving and safely loading state dicts."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    """A weights file that cannot be loaded into the named architecture."""


def save_weights(model: nn.Module, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict with ``weights_only=True``: a pickle that carries code is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError) as error:
        raise WeightsError(f"{path}: refused to load (not a plain state dict of tensors): {error}") from error
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path}: does not match {type(model).__name__}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state)
    return model
