"""Tasks that run offline: generated here, nothing downloaded."""

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


TASKS = ("objects",)


def make_task(name: str, n_train: int, n_test: int, image_size: int, seed: int) -> TaskData:
    """The procedural object-recognition task: shape categories under pose variation and clutter."""
    if name != "objects":
        raise ValueError(f"unknown task {name!r}; known: {list(TASKS)}")
    # Train and test use different seeds so no image is shared between them.
    train = render_objects(n_train, image_size, seed=10_000 + seed)
    test = render_objects(n_test, image_size, seed=20_000 + seed)
    return TaskData(train.images, train.labels, test.images, test.labels, len(CATEGORIES))
