"""Network architectures. Each model exposes its feature blocks as named child modules, in the
order given by :func:`neurofit.models.catalog.layer_names`, so forward hooks find them by name."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neurofit.models.catalog import ARCHITECTURES, layer_names


class AlexNetSmall(nn.Module):
    """A five-block AlexNet-like CNN for small images (3 x size x size input)."""

    def __init__(self, num_outputs: int = 8, width: int = 32, image_size: int = 32) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Sequential(nn.Conv2d(3, w, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.conv3 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.conv4 = nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        spatial = max(image_size // 8, 1)
        self.fc = nn.Sequential(
            nn.AdaptiveAvgPool2d(min(spatial, 2)), nn.Flatten(), nn.Linear(4 * w * min(spatial, 2) ** 2, 8 * w),
            nn.ReLU(),
        )
        self.head = nn.Linear(8 * w, num_outputs)
        self.feature_layers = layer_names("alexnet_small")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.feature_layers:
            x = getattr(self, name)(x)
        return self.head(x)


def build(architecture: str, num_outputs: int, seed: int, **params: Any) -> nn.Module:
    """Build an architecture with weights initialised deterministically from ``seed``."""
    torch.manual_seed(seed)
    if architecture == "alexnet_small":
        return AlexNetSmall(num_outputs=num_outputs, width=int(params.get("width", 32)),
                            image_size=int(params.get("image_size", 32)))
    raise ValueError(f"unknown architecture {architecture!r}; known: {list(ARCHITECTURES)}")
