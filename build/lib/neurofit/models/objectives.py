"""Training objectives: supervised categorisation, SimCLR-style contrastive learning, autoencoding.

An objective is an nn.Module holding what it trains beside the network (the autoencoder's
decoder); those parts live in the training checkpoint, not in the network's weights file.
The network's ``head`` is the classifier (supervised), the projection head (simclr) or the code
layer (autoencoder), so every objective trains the same feature blocks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.models.catalog import OBJECTIVES

EMBEDDING_DIM = 64  # projection (simclr) and code (autoencoder) size


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random view of each image (SimCLR's augmentations for grey images): a random resized crop
    (scale 0.35-1, aspect 3/4-4/3), horizontal flip, brightness and contrast jitter, pixel noise.
    Random numbers come from ``generator`` (CPU) so views are reproducible from a seed."""
    n = x.shape[0]

    def uniform(low: float, high: float, size: int = n) -> torch.Tensor:
        return (low + (high - low) * torch.rand(size, generator=generator)).to(x.device)

    area = uniform(0.35, 1.0)
    aspect = torch.exp(uniform(math.log(3 / 4), math.log(4 / 3)))
    sx = torch.sqrt(area * aspect).clamp(max=1.0)
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (1 - sx) * uniform(-1, 1)
    ty = (1 - sy) * uniform(-1, 1)
    flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    view = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = uniform(0.6, 1.4)[:, None, None, None]
    brightness = uniform(-0.4, 0.4)[:, None, None, None]
    mean = view.mean(dim=(1, 2, 3), keepdim=True)
    view = (view - mean) * contrast + mean + brightness
    noise = torch.randn(view.shape, generator=generator).to(x.device)
    return view + 0.1 * noise


AUGMENTATIONS = ("crop", "flip")


def augment_batch(x: torch.Tensor, kinds: list[str], generator: torch.Generator) -> torch.Tensor:
    """Training-time augmentations of a batch (``augment:`` in a model entry), drawn from
    ``generator``: ``crop``, a random shift of up to 1/8 of the image (reflection-padded, then cropped
    back: the CIFAR recipe); ``flip``, a left-right mirror with probability 1/2."""
    n, _, height, width = x.shape
    if "crop" in kinds:
        pad = max(1, height // 8)
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(height)[None])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width)[None])[:, None, None, :]
        x = padded[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]
    if "flip" in kinds:
        mirrored = torch.rand(n, generator=generator) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(-1), x)
    return x


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy: each view must pick its partner among 2n - 1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, targets)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of the classifier objectives (supervised, untrained, reference): mean cross-entropy."""
    return F.cross_entropy(logits, labels)


class Decoder(nn.Module):
    """Code -> grey image at ``image_size``: a linear map to a quarter-resolution map, then two
    (upsample, conv) stages; convs rather than transposed convs so every learning rule applies."""

    def __init__(self, image_size: int, code_dim: int = EMBEDDING_DIM, channels: int = 32) -> None:
        super().__init__()
        self.image_size = image_size
        self.base = max(image_size // 4, 1)
        self.channels = channels
        self.fc = nn.Linear(code_dim, channels * self.base**2)
        self.up = nn.Sequential(
            nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(channels, channels // 2, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(channels // 2, 1, 3, padding=1),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = self.up(self.fc(code).view(-1, self.channels, self.base, self.base))
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return x


class Objective(nn.Module):
    """``loss(model, x, y, generator)`` for one batch; ``metric`` names the held-out loss."""

    def __init__(self, name: str, image_size: int) -> None:
        super().__init__()
        if name not in OBJECTIVES:
            raise ValueError(f"unknown objective {name!r}; known: {list(OBJECTIVES)}")
        self.name = name
        self.metric = {"simclr": "nt_xent_loss", "autoencoder": "reconstruction_mse"}.get(name, "cross_entropy")
        self.decoder = Decoder(image_size) if name == "autoencoder" else None

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.name == "simclr":
            views = torch.cat([augment(x, generator), augment(x, generator)])
            z = model(views)
            return nt_xent(z[: len(x)], z[len(x):])
        if self.name == "autoencoder":
            assert self.decoder is not None
            # Inputs are grey images replicated over RGB: reconstruct one channel.
            return F.mse_loss(self.decoder(model(x)), x[:, :1])
        return classification_loss(model(x), y)
