"""Tasks that run offline: generated here or shipped inside an installed package, nothing downloaded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurofit.images import CATEGORIES, render_objects


@dataclass(frozen=True)
class TaskData:
    """A labelled image set split into train and held-out parts (images are (n, H, W) in [0, 1])."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int


TASKS = ("objects", "digits")
NUM_CLASSES = {"objects": len(CATEGORIES), "digits": 10}


def make_task(name: str, n_train: int, n_test: int, image_size: int, seed: int,
              variation_levels: tuple[int, ...] = (0, 1, 2, 3), clutter: float = 0.35) -> TaskData:
    """``objects``: shape categories under pose variation (levels 0-3) on 1/f clutter, rendered at
    ``image_size``; ``digits``: scikit-learn's 1797 real 8x8 handwritten digits, resized."""
    if name == "objects":
        # Train and test use different seeds so no image is shared between them.
        train = render_objects(n_train, image_size, seed=10_000 + seed, variation_levels=tuple(variation_levels),
                               clutter=clutter)
        test = render_objects(n_test, image_size, seed=20_000 + seed, variation_levels=tuple(variation_levels),
                              clutter=clutter)
        return TaskData(train.images, train.labels, test.images, test.labels, NUM_CLASSES[name])
    if name == "digits":
        return _digits(n_train, n_test, image_size, seed)
    raise ValueError(f"unknown task {name!r}; known: {list(TASKS)}")


def _digits(n_train: int, n_test: int, image_size: int, seed: int) -> TaskData:
    """The real digits set split by a seeded shuffle; at most a quarter is held out and the rest
    trains (the set has 1797 images, fewer than the default sizes ask for)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = min(n_test, len(images) // 4)
    n_train = min(n_train, len(images) - n_test)
    test, train = order[:n_test], order[n_test:n_test + n_train]
    resized = F.interpolate(torch.from_numpy(images)[:, None], size=(image_size, image_size), mode="bilinear",
                            align_corners=False)[:, 0].clamp(0, 1).numpy()
    labels = digits.target.astype(np.int64)
    return TaskData(resized[train], labels[train], resized[test], labels[test], NUM_CLASSES["digits"])
