"""Shared settings and helpers of the model tests (small enough for seconds on 2 CPU cores)."""

from __future__ import annotations

import hashlib

import torch

TINY = {"width": 4, "image_size": 16, "n_train": 96, "n_test": 48, "epochs": 1, "batch_size": 32}


def state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
