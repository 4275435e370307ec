"""The fit path's memory: one copy of a layer's features (as stored, float32) plus the Gram matrix and
small work arrays. Counted by tracemalloc (numpy's allocations), so deterministic, not a timing."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from neurofit.encoding.fit import fit_groups
from neurofit.encoding.layer import LayerFeatures
from neurofit.encoding.settings import EncodingSettings


def _peak_of_a_three_region_ridge_job(labelled, n: int, p: int, t: int, dtype: str, seed: int) -> tuple[int, int]:
    """(peak bytes traced during one ridge fit job over three regions, bytes of the float32 features)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    y = x[:, :40].astype(np.float64) @ rng.normal(size=(40, t)) + rng.normal(size=(n, t))
    features, responses, _ = labelled(x, y)
    regions = np.repeat(["V1", "V4", "IT"], t // 3)
    responses = responses.assign_coords(region=("neuroid", regions))
    layer = LayerFeatures.from_xarray(features)
    del x, features
    settings = EncodingSettings.from_config({"splits": {"n_splits": 2}, "bootstrap": {"n": 100},
                                             "permutations": {"n": 100}, "backend": "numpy", "dtype": dtype})
    tracemalloc.start()
    try:
        fit_groups("ridge", layer, responses, {r: regions == r for r in ("V1", "V4", "IT")}, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, layer.values.nbytes


@pytest.mark.parametrize(("dtype", "limit"), [("mixed", 2.0), ("float64", 2.5)])
def test_a_ridge_fit_job_holds_at_most_twice_the_feature_matrix(labelled, dtype, limit):
    # the benchmark's pipeline size (640 x 8192, 300 neuroids): dual, with its Gram matrix and fold kernels
    peak, size = _peak_of_a_three_region_ridge_job(labelled, 640, 8192, 300, dtype, seed=0)
    # the features are held already: the job's own allocations stay below (limit - 1) x their size
    assert peak < (limit - 1) * size, f"{peak / size:.2f}x the features on top of them"


@pytest.mark.parametrize("dtype", ["mixed", "float64"])
def test_a_narrow_layer_job_holds_no_stimulus_sized_work_arrays(labelled, dtype):
    """Fewer features than stimuli (5000 x 512, the benchmark's narrow size): the primal fits hold p x p
    arrays and row blocks, the resamples 2 MB blocks; before, 3.7x (mixed) and 6.9x (float64) the
    features on top of them (the primal covariance's temporaries, the held-out rows' centred copies, the
    permutation products of 500 test stimuli)."""
    peak, size = _peak_of_a_three_region_ridge_job(labelled, 5000, 512, 48, dtype, seed=1)
    assert peak < 2.5 * size, f"{peak / size:.2f}x the features on top of them"


@pytest.mark.parametrize("dtype", ["mixed", "float64"])
def test_a_narrow_layer_job_holds_the_covariance_its_eigenvectors_and_little_else(labelled, dtype):
    """640 x 512 (the primal, p close to n): besides the held features, the p x p covariance and its
    eigenvectors (float64; in ``mixed`` the float32 search's covariance, eigenvectors and ?syevd
    workspace weigh the same) and at most 2.5x the features of row blocks, fold fits and responses:
    1.0x (mixed) and 1.4x (float64) measured; before, 3.4x and 3.9x (a p x p copy of the moments per
    fold and a p x p temporary per product, a float64 copy of the fit rows, a copy of the Cholesky
    system per alpha, the held rows' basis beside their centred copy)."""
    n, p = 640, 512
    peak, size = _peak_of_a_three_region_ridge_job(labelled, n, p, 48, dtype, seed=2)
    two_matrices = 2 * p * p * 8
    assert peak - two_matrices < 2.5 * size, f"{(peak - two_matrices) / size:.2f}x the features beyond two p x p"
