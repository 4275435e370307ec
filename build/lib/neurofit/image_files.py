"""The image file types neurofit reads, in one list: stimulus folders (neural), ``pca_images`` sets
(features) and task folders (models) accept the same formats. PIL opens every one of them."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` names an image file by its suffix (any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
