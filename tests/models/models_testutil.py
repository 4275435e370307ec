"""Shared settings and helpers of the model tests (small enough for seconds on 2 CPU cores)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

TINY = {"width": 4, "image_size": 16, "n_train": 96, "n_test": 48, "epochs": 1, "batch_size": 32}


def state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def stripes_folder(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """An ImageFolder tree of three classes (horizontal, vertical, diagonal stripes at random phase and
    period, with noise), in assorted sizes and formats, colour and grey."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in ("diagonal", "horizontal", "vertical"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height, width = int(rng.integers(20, 48)), int(rng.integers(20, 48))
            yy, xx = np.mgrid[:height, :width]
            coordinate = {"horizontal": yy, "vertical": xx, "diagonal": xx + yy}[name]
            period = rng.uniform(4, 8)
            wave = 0.5 + 0.4 * np.sin(2 * np.pi * coordinate / period + rng.uniform(0, 2 * np.pi))
            pixels = np.clip(wave + rng.normal(0, 0.05, wave.shape), 0, 1)
            grey = (pixels * 255).astype(np.uint8)
            image = Image.fromarray(np.stack([grey, grey // 2, 255 - grey], -1)) if i % 2 else Image.fromarray(grey)
            image.save(root / name / f"{i:03d}.{'png' if i % 3 else 'jpg'}")
    return root
