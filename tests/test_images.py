"""Procedural object images: deterministic, balanced, any size."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.images import CATEGORIES, pink_noise, render_objects


def test_deterministic_from_seed_and_different_across_seeds():
    a, b, c = render_objects(16, 24, seed=3), render_objects(16, 24, seed=3), render_objects(16, 24, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize("size", [8, 33, 64])
def test_any_size_in_unit_range(size):
    images = render_objects(10, size, seed=0).images
    assert images.shape == (10, size, size) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_categories_balanced_and_variation_levels_respected():
    result = render_objects(80, 32, seed=1, variation_levels=(0,))
    assert np.bincount(result.labels, minlength=len(CATEGORIES)).tolist() == [10] * len(CATEGORIES)
    # Level 0: centred, unrotated, one scale.
    assert np.allclose(result.pose[:, [0, 1, 3]], 0) and np.allclose(result.pose[:, 2], result.pose[0, 2])


def test_objects_differ_from_background():
    result = render_objects(20, 32, seed=2, variation_levels=(0,), clutter=0.0)
    # Without clutter the background is flat grey; every object departs from it by its contrast.
    assert np.all(np.abs(result.images - 0.5).max(axis=(1, 2)) > 0.2)
    assert np.all(np.isclose(result.images[:, 0, 0], 0.5))


def test_pink_noise_has_falling_spectrum():
    noise = pink_noise(np.random.default_rng(0), 8, 64)
    power = np.abs(np.fft.rfft2(noise - noise.mean(axis=(1, 2), keepdims=True))) ** 2
    assert power[:, 1:4, 1:4].mean() > 20 * power[:, 20:30, 20:30].mean()


def test_unknown_category_is_refused():
    with pytest.raises(ValueError, match="unknown shape categories"):
        render_objects(4, 16, categories=("disk", "dragon"))


def test_clutter_exponent_flattens_the_background_spectrum_and_the_default_is_unchanged():
    # clutter 1, no objects' variation: compare backgrounds by their high- against low-frequency power
    def high_to_low(exponent: float) -> float:
        images = render_objects(40, 32, seed=5, clutter=1.0, clutter_exponent=exponent).images
        power = np.abs(np.fft.rfft2(images - images.mean(axis=(1, 2), keepdims=True))) ** 2
        return float(power[:, 8:16, 8:16].mean() / power[:, 1:3, 1:3].mean())

    assert high_to_low(0.5) > 3 * high_to_low(1.0)  # measured: 0.051 against 0.012
    np.testing.assert_array_equal(render_objects(8, 24, seed=1).images,
                                  render_objects(8, 24, seed=1, clutter_exponent=1.0).images)
