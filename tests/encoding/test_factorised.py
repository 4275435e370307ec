"""The factorised readout (Gaussian mask x feature weights per neuroid)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import Ridge

from neurofit.encoding.factorised import FactorisedReadout, gaussian_masks, gaussians, map_shape
from neurofit.encoding.fit import fit_metric
from neurofit.encoding.ridge import pearson_columns
from neurofit.encoding.settings import EncodingSettings
from neurofit.encoding.splits import stimulus_splits

SETTINGS = EncodingSettings.from_config({"splits": {"n_splits": 3}, "bootstrap": {"n": 20}, "permutations": {"n": 20}})



def planted(n: int, channels: int, side: int, n_units: int, rng: np.random.Generator, factorised: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Maps ``(n, channels, side, side)`` and noiseless units that read them through a Gaussian mask x
    channel weights (``factorised``), or through independent weights per channel and position."""
    maps = rng.standard_normal((n, channels, side, side))
    if factorised:
        masks = gaussian_masks(side, side, [0.1])[rng.choice(side * side, n_units)]  # (unit, position)
        weights = rng.standard_normal((n_units, channels))[:, :, None] * masks[:, None, :]
    else:
        weights = rng.standard_normal((n_units, channels, side * side)) * gaussian_masks(side, side, [0.2])[
            rng.choice(side * side, n_units)][:, None, :]
    y = np.einsum("ncp,ucp->nu", maps.reshape(n, channels, -1), weights)
    return maps.reshape(n, -1), y


def test_gaussian_masks_sum_to_one_and_peak_at_their_centre():
    masks = gaussian_masks(5, 4, [0.1, 0.4])
    assert masks.shape == (2 * 20, 20)
    np.testing.assert_allclose(masks.sum(1), 1.0)
    assert (masks[:20].argmax(1) == np.arange(20)).all()
    assert masks[20:].max() < masks[:20].max()  # the wide mask spreads its weight
    assert gaussian_masks(1, 1).tolist() == [[1.0]]


def test_gaussians_at_sub_pixel_centres_sum_to_one_and_match_the_grid_at_integer_ones():
    masks = gaussians(np.array([[2.0, 1.0], [2.5, 1.5]]), np.array([1.0, 1.0]), 5, 4)  # 0.2 of the longer side
    np.testing.assert_allclose(masks.sum(1), 1.0)
    np.testing.assert_allclose(masks[0], gaussian_masks(5, 4, [0.2])[2 * 4 + 1])
    half = masks[1].reshape(5, 4)
    assert np.isclose(half[2, 1], half[3, 2]) and np.isclose(half[2, 2], half[3, 1])  # symmetric about (2.5, 1.5)


def test_refinement_finds_receptive_fields_off_the_grid():
    # Units whose masks sit between map pixels with widths between the grid's: the coarse grid loses
    # variance that the local refinement recovers, and the refined centres land near the planted ones.
    rng = np.random.default_rng(6)
    n, channels, side, n_units = 400, 6, 12, 8
    maps = rng.standard_normal((n, channels, side, side))
    centres = rng.uniform(3, 8, (n_units, 2)) + 0.5
    sigmas = np.full(n_units, 0.15 * side)  # not on the grid (0.05, 0.1, 0.2, 0.4 of the side)
    weights = rng.standard_normal((n_units, channels))[:, :, None] * gaussians(centres, sigmas, side, side)[:, None]
    x = maps.reshape(n, -1)
    y = np.einsum("ncp,ucp->nu", maps.reshape(n, channels, -1), weights)
    coarse = FactorisedReadout((channels, side, side), refine_rounds=()).fit(x[:300], y[:300])
    refined = FactorisedReadout((channels, side, side)).fit(x[:300], y[:300])
    r_coarse = pearson_columns(coarse.predict(x[300:]), y[300:])
    r_refined = pearson_columns(refined.predict(x[300:]), y[300:])
    # noiseless units: coarse grid 0.93-0.97, refined (two rounds) 0.985-0.999 on held-out stimuli
    assert r_coarse.max() < 0.98 and r_refined.min() > 0.98, (r_coarse, r_refined)
    assert np.abs(refined.centres_ - centres).max() < 0.4  # the coarse grid is up to 0.5 px off
    assert np.abs(refined.sigma_pixels_ / sigmas - 1).max() < 0.1  # the coarse grid is 33% off


def test_recovers_planted_factorised_units_on_held_out_stimuli():
    rng = np.random.default_rng(0)
    x, y = planted(300, 8, 10, 6, rng)
    y_noisy = y + 0.1 * y.std(0) * rng.standard_normal(y.shape)
    readout = FactorisedReadout((8, 10, 10)).fit(x[:250], y_noisy[:250])
    r = pearson_columns(readout.predict(x[250:]), y[250:])
    assert r.min() > 0.97, r
    assert readout.loo_r_.min() > 0.95


def test_a_readout_that_mixes_positions_is_not_factorisable():
    # The point of the metric: channels and positions mixed freely are beyond it, unlike ridge.
    rng = np.random.default_rng(1)
    x, y = planted(300, 8, 10, 6, rng, factorised=False)
    readout = FactorisedReadout((8, 10, 10)).fit(x[:250], y[:250])
    assert np.median(pearson_columns(readout.predict(x[250:]), y[250:])) < 0.7


def test_leave_one_out_error_is_the_brute_force_one():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 3))
    y = x @ rng.standard_normal((3, 2)) + rng.standard_normal((40, 2))
    readout = FactorisedReadout((3,), relative_alphas=np.array([0.5])).fit(x, y)
    alpha = readout.alpha_[0]
    loo = np.empty_like(y)
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        loo[i] = Ridge(alpha=alpha).fit(x[keep], y[keep]).predict(x[i:i + 1])[0]
    np.testing.assert_allclose(readout.loo_r_, pearson_columns(loo, y), atol=1e-10)


def test_a_vector_layer_is_a_one_by_one_map_read_by_ridge():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 5))
    y = x @ rng.standard_normal((5, 3)) + 0.5 * rng.standard_normal((60, 3))
    readout = FactorisedReadout((5,)).fit(x[:50], y[:50])
    for j in range(3):
        ridge = Ridge(alpha=readout.alpha_[j]).fit(x[:50], y[:50, j])
        np.testing.assert_allclose(readout.predict(x[50:])[:, j], ridge.predict(x[50:]), atol=1e-9)


def test_refuses_features_without_a_map():
    with pytest.raises(ValueError, match="features.reduce"):
        map_shape(None, 100)
    with pytest.raises(ValueError, match="does not give its 100 features"):
        map_shape((4, 5, 6), 100)
    assert map_shape((7,), 7) == (7, 1, 1)


def test_fit_metric_runs_the_factorised_readout_and_refuses_reduced_features(labelled):
    rng = np.random.default_rng(4)
    x, y = planted(120, 4, 6, 5, rng)
    y = y + 0.3 * y.std(0) * rng.standard_normal(y.shape)
    features, responses, _ = labelled(x, y)
    features.attrs["output_shape"] = "4 6 6"
    result = fit_metric("factorised", features, responses, SETTINGS)
    assert result.attrs["map_shape"].tolist() == [4, 6, 6]
    assert result["test_score"].sizes["split"] == 3
    assert float(result["test_score"].mean()) > 0.8
    assert float(result["train_score"].mean()) > 0.8
    assert float(result["null"].mean()) < 0.2
    del features.attrs["output_shape"]  # as after features.reduce
    with pytest.raises(ValueError, match="factorised metric needs the layer's output shape"):
        fit_metric("factorised", features, responses, SETTINGS)
    gram = xr.Dataset({"gram": (("stimulus", "stimulus_b"), x @ x.T), "row_mean": (("stimulus",), x.mean(1))},
                      coords={"stimulus_id": ("stimulus", features["stimulus_id"].values)},
                      attrs={"n_features": x.shape[1]})
    with pytest.raises(ValueError, match="no spatial map"):
        fit_metric("factorised", gram, responses, SETTINGS)


def test_training_score_sees_only_training_stimuli():
    rng = np.random.default_rng(5)
    x, y = planted(100, 4, 6, 3, rng)
    splits = stimulus_splits(100, "brainscore", 2, 0.9, 1, None)
    first = FactorisedReadout((4, 6, 6)).cross_validated(x, y, splits)
    changed = y.copy()
    changed[splits[0][1]] = rng.standard_normal((len(splits[0][1]), 3))  # split 0's test stimuli
    second = FactorisedReadout((4, 6, 6)).cross_validated(x, changed, splits)
    assert first[0].train_score == second[0].train_score
    # the mask search of all splits at once reads the responses through each split's training rows only: not
    # even the rounding of split 0's fit depends on its test responses
    np.testing.assert_array_equal(first[0].prediction, second[0].prediction)
    for name in ("inner_r", "alpha", "centre", "sigma"):
        np.testing.assert_array_equal(first[0].extras[name], second[0].extras[name])


def test_features_keep_their_map_shape_for_the_factorised_readout_and_reduced_ones_do_not(tmp_path):
    pytest.importorskip("torch")
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.features import extract_layer, save_features
    from neurofit.models.train import ModelSpec

    model = ModelSpec(width=4, image_size=16).build()
    images = np.random.default_rng(0).integers(0, 255, (12, 16, 16), dtype=np.uint8)
    stimuli = xr.DataArray(images, dims=("stimulus", "y", "x"),
                           coords={"stimulus_id": ("stimulus", [f"s{i:02d}" for i in range(12)])})
    path = tmp_path / "conv1.nc"
    save_features(extract_layer(model, "conv1", stimuli, 16), str(path))
    layer = LayerFeatures.from_xarray(xr.load_dataarray(path, engine="h5netcdf"))
    assert layer.shape == (4, 8, 8)  # (channel, y, x) survives the file
    fc = extract_layer(model, "fc", stimuli, 16)
    assert fc.attrs["output_shape"] == "32"  # a vector layer: a 1 x 1 map
    reduced = extract_layer(model, "conv1", stimuli, 16, reduce="random", max_dims=5, seed=1)
    assert "output_shape" not in reduced.attrs
