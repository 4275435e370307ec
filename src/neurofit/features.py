"""Activations of named layers for a stimulus set, through forward hooks, batched.

Extracts one layer per call so that peak memory is one layer's activations for the stimulus set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from neurofit.models.train import device, to_input


def preprocess(images: np.ndarray, image_size: int) -> torch.Tensor:
    """Stimuli (n, H, W) or (n, H, W, C) in [0, 1] -> network input at ``image_size``."""
    if images.ndim == 4:  # colour: the networks here see luminance
        images = images[..., :3].mean(axis=-1)
    x = to_input(images)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def extract_layer(
    model: nn.Module, layer: str, stimuli: xr.DataArray, image_size: int, batch_size: int = 128
) -> xr.DataArray:
    """Activations of ``layer`` as ``(stimulus, feature)``, aligned to ``stimuli.stimulus_id``."""
    modules = dict(model.named_modules())
    if layer not in modules:
        raise KeyError(f"layer {layer!r} not in model; available: {list(getattr(model, 'feature_layers', modules))}")
    dev = device()
    model.to(dev).eval()
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1).cpu()))
    try:
        images = stimuli.values
        for start in range(0, len(images), batch_size):
            model(preprocess(images[start:start + batch_size], image_size).to(dev))
    finally:
        handle.remove()
    values = torch.cat(captured).numpy().astype(np.float32)
    return xr.DataArray(
        values,
        dims=("stimulus", "feature"),
        coords={"stimulus_id": ("stimulus", stimuli["stimulus_id"].values)},
        name="features",
        attrs={"layer": layer},
    )


def save_features(features: xr.DataArray, path: str, **attrs: Any) -> None:
    features.attrs.update({k: str(v) for k, v in attrs.items()})
    features.to_netcdf(path, engine="h5netcdf")
