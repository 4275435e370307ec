"""Wide layers in bounded memory: batch-by-batch reductions and Gram-only fits equal their whole-matrix forms."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurofit.encoding.fit import fit_metric
from neurofit.encoding.layer import LayerFeatures
from neurofit.encoding.settings import EncodingSettings
from neurofit.features import reduce_batches
from neurofit.reduction import ColumnSpill, sparse_random_matrix, spill_gram

FAST = EncodingSettings.from_config({"bootstrap": {"n": 50}, "permutations": {"n": 50}, "splits": {"n_splits": 4},
                                    "dtype": "float64"})


def batches(x: np.ndarray, size: int = 7):
    return ((s, x[s:s + size]) for s in range(0, len(x), size))


def test_spilled_gram_and_cross_products_equal_the_direct_ones(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(23, 50)).astype(np.float32), rng.normal(size=(9, 50)).astype(np.float32)
    a, b = ColumnSpill(23, 50, str(tmp_path), block_bytes=23 * 4 * 8), ColumnSpill(9, 50, str(tmp_path), 9 * 4 * 8)
    assert a.n_blocks == 7  # 8 columns per block, the last one padded
    for s, batch in batches(x):
        a.write(s, batch)
    for s, batch in batches(y, 4):
        b.write(s, batch)
    gram, cross = spill_gram(a, b)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    np.testing.assert_allclose(gram, x64 @ x64.T, atol=1e-10)
    np.testing.assert_allclose(cross, y64 @ x64.T, atol=1e-10)
    np.testing.assert_allclose(a.row_sum, x64.sum(1), atol=1e-10)
    a.close()
    b.close()
    assert not list(tmp_path.iterdir()), "the spill files are removed"


def test_gram_only_features_fit_every_metric_exactly(labelled):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(80, 300)) + 0.5).astype(np.float32)
    y = x.astype(float) @ rng.normal(size=(300, 6)) / 17 + rng.normal(size=(80, 6))
    features, responses, ids = labelled(x, y)
    gram, info = reduce_batches(batches(x), 80, "gram", None, 0)
    stored = xr.Dataset({"gram": (("stimulus", "stimulus_b"), gram), "row_mean": (("stimulus",), info["row_mean"])},
                        coords={"stimulus_id": ("stimulus", ids)}, attrs={"n_features": info["n_features"]})
    gram_only = LayerFeatures.from_xarray(stored)
    assert gram_only.gram_only and gram_only.n_features == 300
    for metric in ("ridge", "pls", "rsa", "cka"):
        a, b = fit_metric(metric, features, responses, FAST), fit_metric(metric, gram_only, responses, FAST)
        assert b.attrs["features_form"] == "gram" and b.attrs["n_features"] == 300
        for name in ("test_score", "train_score", "boot_both", "null"):
            np.testing.assert_allclose(b[name], a[name], atol=1e-7, err_msg=f"{metric} {name}")


def test_pca_fitted_on_a_separate_image_set_equals_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(2)
    mixing = rng.normal(size=(12, 200))
    fit_set = (rng.normal(size=(40, 12)) @ mixing + 0.1 * rng.normal(size=(40, 200)) + 2).astype(np.float32)
    stimuli = (rng.normal(size=(25, 12)) @ mixing + 2).astype(np.float32)
    scores, info = reduce_batches(batches(stimuli), 25, "pca_images", 8, 0, batches(fit_set, 6), 40)
    # blocks narrower than the layer, different for the two sets unless shared
    from unittest import mock

    with mock.patch("neurofit.reduction.BLOCK_BYTES", 25 * 4 * 30):
        again, _ = reduce_batches(batches(stimuli), 25, "pca_images", 8, 0, batches(fit_set, 6), 40)
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-4)
    pca = PCA(n_components=8).fit(fit_set.astype(np.float64))
    expected = pca.transform(stimuli.astype(np.float64))
    signs = np.sign((scores * expected).sum(0))
    np.testing.assert_allclose(scores * signs, expected, rtol=1e-4, atol=1e-3)
    assert info["explained_variance"] == pytest.approx(pca.explained_variance_ratio_.sum(), abs=1e-6)


def test_sparse_random_projection_is_batchwise_very_sparse_and_preserves_norms():
    p, k = 10_000, 400
    matrix = sparse_random_matrix(p, k, seed=3)
    assert matrix.nnz == pytest.approx(p * k / np.sqrt(p), rel=0.05)  # density 1 / sqrt(p)
    assert np.allclose(np.abs(matrix.data), np.sqrt(np.sqrt(p) / k))
    x = np.random.default_rng(4).normal(size=(30, p)).astype(np.float32)
    reduced, info = reduce_batches(batches(x), 30, "sparse_random", k, 3)
    np.testing.assert_allclose(reduced, x @ matrix.toarray(), rtol=1e-4, atol=1e-3)
    ratio = (reduced**2).sum(1) / (x.astype(np.float64) ** 2).sum(1)
    assert abs(ratio.mean() - 1) < 0.05 and info["reduce"] == "sparse_random" and info["original_features"] == p
    again, _ = reduce_batches(batches(x, 11), 30, "sparse_random", k, 3)
    np.testing.assert_array_equal(again, reduced)  # the same seed, any batch size: the same projection


def test_extract_layer_writes_a_gram_dataset_the_fit_reads(tmp_path):
    import torch
    from torch import nn

    from neurofit.features import Preprocess, extract_layer, save_features

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    ids = np.array([f"s{i}" for i in range(10)])
    stimuli = xr.DataArray(np.random.default_rng(0).random((10, 12, 12)), dims=("stimulus", "y", "x"),
                           coords={"stimulus_id": ("stimulus", ids)})
    plain = extract_layer(model, "1", stimuli, Preprocess(12), batch_size=3)
    gram = extract_layer(model, "1", stimuli, Preprocess(12), batch_size=3, reduce="gram", spill_dir=str(tmp_path))
    assert isinstance(gram, xr.Dataset) and gram.attrs["reduce"] == "gram" and gram.attrs["n_features"] == 400
    x = plain.values.astype(np.float64)
    np.testing.assert_allclose(gram["gram"].values, x @ x.T, rtol=1e-6)
    save_features(gram, str(tmp_path / "f.nc"), architecture="toy")
    loaded = LayerFeatures.from_xarray(xr.load_dataset(tmp_path / "f.nc", engine="h5netcdf"))
    assert loaded.gram_only and loaded.n_features == 400
