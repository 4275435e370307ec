"""fit_metric for every metric: artefact layout, null behaviour, resamples, no double dipping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurofit.encoding.fit import fit_metric, normalise, stimulus_labels
from neurofit.encoding.settings import EncodingSettings

FAST = EncodingSettings.from_config({"bootstrap": {"n": 100}, "permutations": {"n": 100}, "splits": {"n_splits": 5}})
SMALL = EncodingSettings.from_config({"splits": {"n_splits": 3, "train_size": 0.8}, "bootstrap": {"n": 10},
                                     "permutations": {"n": 10}})


def linear_data(n=120, p=60, t=12, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    return x, x @ rng.normal(size=(p, t)) / np.sqrt(p) + noise * rng.normal(size=(n, t))


@pytest.mark.parametrize("metric", ["ridge", "pls", "rsa", "cka"])
def test_every_metric_scores_signal_and_not_shuffled_targets(metric, labelled):
    x, y = linear_data(noise=0.5)
    features, responses, _ = labelled(x, y)
    fit = fit_metric(metric, features, responses, FAST)
    assert fit.attrs["metric"] == metric and fit.attrs["n_neuroids"] == 12 and fit.attrs["n_stimuli"] == 120
    assert fit["test_score"].dims == ("split",) and fit["train_score"].dims == ("split",)
    assert fit["boot_both"].shape == (100, 5) and fit["null"].shape == (100, 5)
    assert fit["test_score"].mean() > 0.2
    p_value = (1 + (fit["null"].mean("split") >= fit["test_score"].mean()).sum()) / 101
    assert p_value < 0.05
    shuffled = responses.copy(data=responses.values[np.random.default_rng(5).permutation(120)])
    null_fit = fit_metric(metric, features, shuffled, FAST)
    assert abs(float(null_fit["test_score"].mean())) < 0.1
    if metric in ("ridge", "pls"):
        assert fit["test_r"].shape == (5, 12)
        np.testing.assert_allclose(fit["test_score"], np.median(fit["test_r"], axis=1))


def test_train_score_never_sees_the_test_stimuli(labelled):
    x, y = linear_data()
    features, responses, _ = labelled(x, y)
    fit = fit_metric("ridge", features, responses, SMALL)
    from neurofit.encoding.splits import stimulus_splits

    _, test = stimulus_splits(120, n_splits=3, train_size=0.8)[0]
    changed = responses.copy(data=responses.values.copy())
    changed.values[test] = np.random.default_rng(9).normal(size=(len(test), 12)) * 10
    refit = fit_metric("ridge", features, changed, SMALL)
    # identical up to rounding: a constant shift of all targets is removed first (shift invariant)
    assert float(refit["train_score"][0]) == pytest.approx(float(fit["train_score"][0]), abs=1e-12)
    np.testing.assert_array_equal(refit["alpha"][0], fit["alpha"][0])
    assert float(refit["test_score"][0]) != float(fit["test_score"][0])


def test_resamples_are_paired_across_layers_and_centre_on_the_score(labelled):
    x, y = linear_data()
    features, responses, _ = labelled(x, y)
    a = fit_metric("ridge", features, responses, FAST)
    b = fit_metric("ridge", features.copy(data=features.values * 2 + 1), responses, FAST)
    # scaling the features changes the penalty's effect but not which stimuli each draw takes
    np.testing.assert_allclose(a["boot_stimuli"].mean("boot"), a["test_score"], atol=0.1)
    assert b["boot_both"].shape == a["boot_both"].shape


def test_stratification_labels_come_from_a_presentation_coord():
    import xarray as xr

    raw = xr.DataArray(np.zeros((4, 1)), dims=("presentation", "neuroid"), coords={
        "stimulus_id": ("presentation", ["a", "b", "a", "b"]), "category": ("presentation", ["x", "y", "x", "y"])})
    assert stimulus_labels(raw, ["object_name", "category"]) == ("category", {"a": "x", "b": "y"})
    assert stimulus_labels(raw, ["object_name"]) is None
    bad = raw.assign_coords(category=("presentation", ["x", "y", "z", "y"]))
    with pytest.raises(ValueError, match="two values of coord 'category'"):
        stimulus_labels(bad, ["category"])


def test_normalisations_are_named_and_correct():
    assert normalise(0.4, 0.8, "r/c") == pytest.approx(0.5)
    assert normalise(0.4, 0.8, "(r/c)^2") == pytest.approx(0.25)
    assert normalise(0.4, 0.8, "r^2/c") == pytest.approx(0.2)
    assert normalise(0.4, 0.8, "none") == 0.4
    assert np.isnan(normalise(0.4, 0.0, "r/c"))
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(0.4, 0.8, "r/sqrt(c)")


def test_unknown_metric_is_named(labelled):
    features, responses, _ = labelled(*linear_data())
    with pytest.raises(ValueError, match="unknown metric 'svm'"):
        fit_metric("svm", features, responses)


def three_regions(n=90, p=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    y = x.astype(float) @ rng.normal(size=(p, 20)) / np.sqrt(p) + rng.normal(size=(n, 20))
    regions = np.array(["V1"] * 6 + ["V4"] * 9 + ["IT"] * 5)
    return x, y, regions


@pytest.mark.parametrize(("metric", "dtype", "tolerance"), [
    ("ridge", "float64", 1e-10), ("pls", "float64", 1e-10), ("rsa", "float64", 1e-10), ("cka", "float64", 1e-10),
    # mixed precision: the float32 alpha search rounds differently for other sets of columns
    ("ridge", "mixed", 1e-6)])
@pytest.mark.parametrize("p", [120, 30])  # dual and primal ridge
def test_one_fit_for_all_regions_equals_a_fit_per_region(metric, dtype, tolerance, p, labelled):
    from neurofit.encoding.fit import fit_groups

    x, y, regions = three_regions(p=p)
    features, responses, _ = labelled(x, y)
    responses = responses.assign_coords(region=("neuroid", regions))
    settings = dataclasses.replace(FAST, dtype=dtype)
    together = fit_groups(metric, features, responses, {r: regions == r for r in ("V1", "V4", "IT")}, settings)
    for region, fit in together.items():
        alone = fit_metric(metric, features, responses.isel(neuroid=regions == region), settings)
        assert set(fit.data_vars) == set(alone.data_vars) and fit.attrs["n_neuroids"] == (regions == region).sum()
        assert list(fit["region"].values) == [region] * int((regions == region).sum())
        for name in alone.data_vars:
            np.testing.assert_allclose(fit[name], alone[name], rtol=0, atol=tolerance, err_msg=f"{region} {name}")


@pytest.mark.parametrize("region", ["V1", "V4"])  # the neuroids' first columns, and middle ones
def test_a_job_over_one_region_of_the_responses_equals_a_fit_of_that_region_alone(region, labelled):
    # the pipeline's per-region job: ridge fits every neuroid of the responses, the group takes its columns
    from neurofit.encoding.fit import fit_groups

    x, y, regions = three_regions(p=30)
    features, responses, _ = labelled(x, y)
    responses = responses.assign_coords(region=("neuroid", regions))
    one = fit_groups("ridge", features, responses, {region: regions == region}, FAST)[region]
    alone = fit_metric("ridge", features, responses.isel(neuroid=regions == region), FAST)
    assert FAST.dtype == "mixed"
    for name in alone.data_vars:
        # train_score is the median of the float32 inner-CV r (mixed precision): an sgemm over all 20 columns
        # may round a column differently from one over the region's (OpenBLAS 0.3.31 does, by one float32 ulp);
        # the choices it makes (alpha) and every reported score agree to 1e-10
        tolerance = 1e-6 if name == "train_score" else 1e-10
        np.testing.assert_allclose(one[name], alone[name], rtol=0, atol=tolerance, err_msg=name)


def test_regression_resamples_equal_a_direct_computation_per_draw():
    from neurofit.encoding.fit import _draws, _split_resamples
    from neurofit.encoding.ridge import pearson_columns

    rng = np.random.default_rng(4)
    pred, target = rng.normal(size=(15, 7)) + 3, rng.normal(size=(15, 7))
    got = _split_resamples(pred, target, [7], 30, 20, [0, 2])[0]
    rows, cols, perm = _draws(15, 7, 30, 20, [0, 2])
    for b in range(30):
        r = pearson_columns(pred[rows[b]], target[rows[b]])
        assert got["boot_stimuli"][b] == pytest.approx(np.median(r), abs=1e-12)
        assert got["boot_both"][b] == pytest.approx(np.median(r[cols[b]]), abs=1e-12)
        assert got["boot_neuroids"][b] == pytest.approx(np.median(pearson_columns(pred, target)[cols[b]]), abs=1e-12)
    for b in range(20):
        assert got["null"][b] == pytest.approx(np.median(pearson_columns(pred, target[perm[b]])), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_bytes", [8, 1 << 10, 5 << 10, 1 << 20])  # one stimulus x neuroid .. everything
def test_the_blocked_permutation_null_equals_one_sparse_product_bit_for_bit(dtype, block_bytes):
    # the null adds each block's picks into r with scipy's CSR kernel: the same sums, in the same order, as
    # scipy's public product of the whole (permutations, m^2) pick matrix and all m^2 products (guards the
    # private kernel's signature and accumulation too)
    from scipy import sparse

    from neurofit.encoding.fit import _compact_indices, _permuted_r

    rng = np.random.default_rng(7)
    m, t, n_perm = 23, 9, 40
    y, scaled = rng.normal(size=(m, t)).astype(dtype), rng.normal(size=(m, t)).astype(dtype)
    perm = rng.permuted(np.tile(np.arange(m), (n_perm, 1)), axis=1)
    picks = sparse.csr_array((np.ones(perm.size, dtype=dtype), (m * np.arange(m) + perm).ravel(),
                              np.arange(0, perm.size + 1, m)), shape=(n_perm, m * m))
    expected = picks @ (scaled[:, None, :] * y[None, :, :]).reshape(m * m, t)
    got = _permuted_r(y, scaled, _compact_indices(perm, m * m), block_bytes)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 513, 1000])
def test_median_rows_equals_numpy_median_with_nans(n):
    from neurofit.encoding.fit import median_rows

    a = np.random.default_rng(n).normal(size=(6, n))
    a[1, n // 2] = np.nan
    a[2, 0] = np.nan
    a[3] = a[3].round(1)  # ties
    np.testing.assert_array_equal(median_rows(a), np.median(a, axis=1))
    np.testing.assert_array_equal(median_rows(a.astype(np.float32)), np.median(a.astype(np.float32), axis=1))


@pytest.mark.parametrize("n", [1, 2, 7, 100, 513])
def test_median_of_draws_equals_the_median_of_the_drawn_values(n):
    from neurofit.encoding.fit import median_of_draws, median_rows

    rng = np.random.default_rng(n)
    values = rng.normal(size=n).round(1)  # ties
    draws = rng.integers(0, n, (40, n))
    np.testing.assert_array_equal(median_of_draws(values, draws), median_rows(values[draws]))
    np.testing.assert_array_equal(median_of_draws(values, draws), np.median(values[draws], axis=1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_resamples_of_groups_side_by_side_equal_each_group_alone(dtype):
    from neurofit.encoding.fit import _split_resamples

    rng = np.random.default_rng(7)
    sizes = [5, 70, 12]
    pred, target = rng.normal(size=(40, sum(sizes))), rng.normal(size=(40, sum(sizes)))
    pred[:, 3] = 1.0  # a constant prediction scores 0, as pearson_columns gives it
    together = _split_resamples(pred, target, sizes, 50, 40, [3, 1], dtype)
    bounds = np.cumsum([0, *sizes])
    for group, start, stop in zip(together, bounds[:-1], bounds[1:], strict=True):
        alone = _split_resamples(pred[:, start:stop], target[:, start:stop], [stop - start], 50, 40, [3, 1], dtype)[0]
        for name, values in alone.items():
            np.testing.assert_array_equal(group[name], values, err_msg=name)


def test_float32_resamples_are_within_1e5_of_float64():
    """The default (`mixed`) ridge fit resamples in float32: at the pipeline's split size (64 test
    stimuli) every draw's median r is within 1e-5 of the float64 draw."""
    from neurofit.encoding.fit import _split_resamples

    rng = np.random.default_rng(11)
    signal = rng.normal(size=(64, 120))
    pred, target = signal + 0.5 * rng.normal(size=signal.shape) + 40, signal + rng.normal(size=signal.shape) - 7
    exact = _split_resamples(pred, target, [50, 70], 300, 300, [0, 4], np.float64)
    single = _split_resamples(pred, target, [50, 70], 300, 300, [0, 4], np.float32)
    for a, b in zip(exact, single, strict=True):
        for name in a:
            assert b[name].dtype == np.float64
            np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-5, err_msg=name)


def test_fit_takes_its_settings_as_one_typed_object(labelled):
    from neurofit.encoding.fit import fit_groups
    from neurofit.settings import SettingsError

    x, y = linear_data()
    features, responses, _ = labelled(x, y)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_splits'"):
        fit_metric("ridge", features, responses, n_splits=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"EncodingSettings\.from_config"):
        fit_groups("ridge", features, responses, None, {"splits": {"n_splits": 3}})  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match=r"encoding: unknown option\(s\) \['n_split'\]"):
        EncodingSettings.from_config({"n_split": 3})
    fit = fit_metric("ridge", features, responses, SMALL)
    assert fit.attrs["n_splits"] == 3 and fit.attrs["train_size"] == 0.8 and fit["null"].shape == (10, 3)
