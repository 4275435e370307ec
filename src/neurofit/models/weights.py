"""Saving and safely loading state dicts and training checkpoints.

Everything is read with ``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, so a file that carries code is refused instead of run.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weights file that cannot be loaded into the named architecture."""


def _safe_load(path: str | Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError) as error:
        raise WeightsError(f"{path}: refused to load (not a plain file of tensors; torch.load(weights_only=True) "
                           f"said: {str(error).splitlines()[0]})") from error


def save_weights(model: nn.Module, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict with ``weights_only=True``; its keys and shapes must match ``model``."""
    state = _safe_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                   for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(
            f"{path}: does not match {type(model).__name__}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state)
    return model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write atomically (temporary file, then rename) so an interruption never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, training_key: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and was written with the same training settings."""
    if not Path(path).is_file():
        return None
    state = _safe_load(path)
    if not isinstance(state, dict) or state.get("training_key") != training_key:
        log.warning("%s: checkpoint from other settings; training from scratch", path)
        return None
    return state
