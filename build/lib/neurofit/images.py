"""Procedurally generated object images: categories of shapes under pose variation on cluttered
backgrounds with natural (1/f) image statistics. Deterministic from a seed, any image size.

Used by the object-recognition task (models) and by the simulator's stimulus set; numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _triangle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y > -0.35) & (y < 0.55 - 1.7 * np.abs(x))


SHAPES: dict[str, ShapeFn] = {
    "disk": lambda x, y: x**2 + y**2 < 0.45**2,
    "square": lambda x, y: np.maximum(np.abs(x), np.abs(y)) < 0.38,
    "triangle": _triangle,
    "cross": lambda x, y: ((np.abs(x) < 0.14) & (np.abs(y) < 0.5)) | ((np.abs(y) < 0.14) & (np.abs(x) < 0.5)),
    "ring": lambda x, y: ((x**2 + y**2) > 0.28**2) & ((x**2 + y**2) < 0.48**2),
    "star": lambda x, y: np.hypot(x, y) < 0.3 + 0.18 * np.cos(5 * np.arctan2(y, x)),
    "bar": lambda x, y: (np.abs(x) < 0.55) & (np.abs(y) < 0.12),
    "ellipse": lambda x, y: (x / 0.55) ** 2 + (y / 0.28) ** 2 < 1,
}
CATEGORIES: tuple[str, ...] = tuple(SHAPES)

# Pose ranges per variation level (Yamins et al. 2014 use levels 0, 3, 6; we use 0..3).
_POSE = {  # level: (max |shift| as a fraction of the half-width, log2 scale spread, max rotation deg)
    0: (0.0, 0.0, 0.0),
    1: (0.15, 0.25, 30.0),
    2: (0.3, 0.5, 90.0),
    3: (0.45, 0.8, 180.0),
}


@dataclass(frozen=True)
class ImageSet:
    """Images ``(n, size, size)`` in [0, 1] with their labels and generating poses."""

    images: np.ndarray
    labels: np.ndarray
    variation: np.ndarray
    pose: np.ndarray  # columns: x shift, y shift, scale, rotation (deg)

    @property
    def categories(self) -> tuple[str, ...]:
        return CATEGORIES


def pink_noise(rng: np.random.Generator, n: int, size: int, exponent: float = 1.0) -> np.ndarray:
    """Backgrounds whose amplitude spectrum falls as 1/f**exponent, scaled to [0, 1] per image."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spectrum = rng.standard_normal((n, size, size // 2 + 1)) + 1j * rng.standard_normal((n, size, size // 2 + 1))
    img = np.fft.irfft2(spectrum / f**exponent, s=(size, size))
    lo = img.min(axis=(1, 2), keepdims=True)
    hi = img.max(axis=(1, 2), keepdims=True)
    return (img - lo) / (hi - lo + 1e-12)


def render_objects(
    n: int,
    size: int = 32,
    seed: int = 0,
    variation_levels: tuple[int, ...] = (0, 1, 2, 3),
    categories: tuple[str, ...] = CATEGORIES,
    clutter: float = 0.35,
    clutter_exponent: float = 1.0,
) -> ImageSet:
    """Render ``n`` images with categories balanced (round-robin) and random poses, on backgrounds
    whose amplitude spectrum falls as 1/f**``clutter_exponent`` (1: natural image statistics)."""
    unknown = set(categories) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shape categories {sorted(unknown)}; known: {list(SHAPES)}")
    if size < 8:
        raise ValueError(f"image size must be at least 8 pixels, got {size}")
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(categories)
    rng.shuffle(labels)
    variation = rng.choice(np.asarray(variation_levels), size=n)
    limits = np.array([_POSE[int(v)] for v in variation], dtype=np.float64).reshape(n, 3)
    shift = limits[:, :1] * rng.uniform(-1, 1, size=(n, 2))
    scale = 2.0 ** (limits[:, 1] * rng.uniform(-1, 1, size=n)) * 0.7
    rotation = limits[:, 2] * rng.uniform(-1, 1, size=n)

    axis = (np.arange(size) + 0.5) / size * 2 - 1
    gx, gy = np.meshgrid(axis, axis)
    theta = np.deg2rad(rotation)[:, None, None]
    # Object coordinates: undo shift, rotation and scale of each image.
    dx = gx[None] - shift[:, 0, None, None]
    dy = gy[None] - shift[:, 1, None, None]
    ox = (np.cos(theta) * dx + np.sin(theta) * dy) / scale[:, None, None]
    oy = (-np.sin(theta) * dx + np.cos(theta) * dy) / scale[:, None, None]

    mask = np.zeros((n, size, size), dtype=bool)
    for index, name in enumerate(categories):
        members = labels == index
        if members.any():
            mask[members] = SHAPES[name](ox[members], oy[members])

    background = 0.5 + clutter * (pink_noise(rng, n, size, exponent=clutter_exponent) - 0.5)
    # Object with a random polarity and contrast, lightly textured so that it is not a flat blob.
    polarity = rng.choice([-1.0, 1.0], size=n)[:, None, None]
    contrast = rng.uniform(0.3, 0.5, size=n)[:, None, None]
    texture = 0.1 * (pink_noise(rng, n, size, exponent=0.5) - 0.5)
    obj = np.clip(0.5 + polarity * contrast + texture, 0, 1)
    images = np.where(mask, obj, background).astype(np.float32)
    pose = np.column_stack([shift, scale, rotation]).astype(np.float32)
    return ImageSet(images=images, labels=labels.astype(np.int64), variation=variation.astype(np.int64), pose=pose)
