"""Saving and safely loading state dicts and training checkpoints.

Everything is read with ``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, so a file that carries code is refused instead of run.
"""

from __future__ import annotations

import hashlib
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


def _refusal_reason(error: Exception) -> str:
    """torch's own reason for refusing a file (e.g. ``unsupported GLOBAL posix.system``), without its
    advice to retry with ``weights_only=False`` (which would run the file's code)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    boilerplate = ("weights only load failed", "re-running", "check the documentation", "weights_only")
    reasons = [line for line in lines if not any(b in line.lower() for b in boilerplate)]
    return " ".join(reasons) or (lines[0] if lines else type(error).__name__)


def _safe_load(path: str | Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError) as error:
        raise WeightsError(f"{path}: refused to load: it is not a plain file of tensors ({_refusal_reason(error)}). "
                           f"Save the network's state_dict (torch.save(model.state_dict(), path)) or, better, "
                           f"safetensors (safetensors.torch.save_file)") from error


def file_digest(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path, key: str = "weights") -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a torch file read with ``weights_only=True`` (a
    checkpoint dict holding ``state_dict``/``model`` is unwrapped). ``key`` names the config key."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{key}: weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own SafetensorError for a bad header
            raise WeightsError(f"{key}: {path} is not a readable safetensors file: {error}") from error
    try:
        state = _safe_load(path)
    except WeightsError as error:
        raise WeightsError(f"{key}: {error}") from error
    if isinstance(state, dict):
        for inner in ("state_dict", "model"):
            if isinstance(state.get(inner), dict):
                state = state[inner]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{key}: {path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    """Load ``state`` into ``model``. Keys may carry a wrapper's prefix (``module.``, or a Hugging
    Face head model's ``resnet.``/``vit.``...): the prefix that makes them match is stripped. Every
    parameter and buffer of the model must be present with its shape; extra tensors (e.g. a
    classifier head the backbone lacks) are ignored and counted. Returns what was done."""
    expected = model.state_dict()
    prefixes = sorted({k.split(".", 1)[0] + "." for k in state if "." in k})
    best, best_prefix = state, ""
    for prefix in prefixes:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if len(set(stripped) & set(expected)) > len(set(best) & set(expected)):
            best, best_prefix = stripped, prefix
    missing = sorted(set(expected) - set(best))
    wrong = sorted(f"{k} {tuple(best[k].shape)} != {tuple(expected[k].shape)}"
                   for k in set(expected) & set(best) if expected[k].shape != best[k].shape)
    if missing or wrong:
        raise WeightsError(f"{where}: does not fit {type(model).__name__}: {len(missing)} missing keys {missing[:5]}, "
                           f"{len(wrong)} of the wrong shape (file != network) {wrong[:5]}")
    extra = sorted(set(state) - {best_prefix + k for k in expected})
    if extra:
        log.warning("%s: %d tensors the network does not have were ignored, e.g. %s", where, len(extra), extra[:3])
    model.load_state_dict({k: best[k] for k in expected})
    return {"stripped_prefix": best_prefix, "ignored_tensors": len(extra)}


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
