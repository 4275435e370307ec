"""Offline tasks: the procedural objects task and the real digits set."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.models.tasks import make_task


def test_digits_split_is_disjoint_and_seeded() -> None:
    data = make_task("digits", 5000, 5000, 16, seed=0)
    assert data.num_classes == 10
    assert len(data.test_images) == 1797 // 4 and len(data.train_images) == 1797 - 1797 // 4
    assert data.train_images.shape[1:] == (16, 16)
    assert data.train_images.min() >= 0 and data.train_images.max() <= 1
    train = {im.tobytes() for im in data.train_images}
    assert not any(im.tobytes() in train for im in data.test_images)
    again = make_task("digits", 100, 50, 16, seed=0)
    np.testing.assert_array_equal(again.test_labels, make_task("digits", 100, 50, 16, seed=0).test_labels)
    assert not np.array_equal(again.test_labels, make_task("digits", 100, 50, 16, seed=1).test_labels)


def test_objects_variation_levels_and_clutter() -> None:
    still = make_task("objects", 40, 8, 24, seed=0, variation_levels=(0,), clutter=0.0)
    # No clutter: the background is flat mid-grey; no variation: every object is centred.
    corners = still.train_images[:, :2, :2]
    assert np.allclose(corners, 0.5)
    varied = make_task("objects", 40, 8, 24, seed=0, variation_levels=(3,), clutter=0.5)
    assert varied.train_images[:, :2, :2].std() > 0.01
    assert set(np.unique(still.train_labels)) == set(range(8))
    with pytest.raises(ValueError, match="unknown task 'imagenet'"):
        make_task("imagenet", 1, 1, 16, 0)
