"""Time-resolved ridge by condition (pure arrays): recovery of a known map, folds by condition, the null."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.encoding.timecourse import (
    bootstrap_median,
    condition_folds,
    fit_timecourse,
    score_region,
    shuffle_time,
    time_resolved_r,
)

ALPHAS = np.logspace(-2, 4, 7)


def smooth_features(n_conditions=6, n_time=40, n_features=5, seed=0):
    """Slow (smooth in time) condition-specific trajectories, like hidden states of an RNN."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n_time)
    freq = rng.uniform(0.5, 2, (n_conditions, 1, n_features))
    phase = rng.uniform(0, 2 * np.pi, (n_conditions, 1, n_features))
    return np.sin(2 * np.pi * freq * t[None, :, None] + phase)


def test_folds_hold_out_whole_conditions():
    folds = condition_folds(6)
    assert [f.tolist() for f in folds] == [[c] for c in range(6)]
    grouped = condition_folds(7, n_folds=3, seed=1)
    assert sorted(np.concatenate(grouped).tolist()) == list(range(7)) and len(grouped) == 3
    with pytest.raises(ValueError, match="at least 2 conditions"):
        condition_folds(1)


def test_a_linear_readout_is_recovered_on_held_out_conditions():
    x = smooth_features()
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(5, 8))
    signal = x @ weights
    y = signal + rng.normal(0, 0.2, signal.shape)
    fit = fit_timecourse(x, y, ALPHAS)
    assert fit.prediction.shape == y.shape and fit.alpha.shape == (6, 8)
    assert np.all(fit.r > 0.9) and np.nanmean(fit.r_time) > 0.8
    # Each condition is predicted by a fit that never saw it: unrelated features predict nothing.
    unrelated = smooth_features(seed=5)
    assert np.median(fit_timecourse(unrelated, y, ALPHAS).r) < 0.5


def test_a_held_out_condition_is_never_in_its_own_training_set():
    x = smooth_features(n_conditions=4)
    y = x[..., :2].copy()
    y[2] += 100.0  # a condition offset that only a fit trained on condition 2 could know
    fit = fit_timecourse(x, y, ALPHAS)
    assert np.abs(fit.prediction[2] - y[2]).mean() > 50


def test_shuffled_time_null_loses_the_time_course_but_keeps_conditions():
    x = smooth_features()
    shuffled = shuffle_time(x, seed=3)
    assert shuffled.shape == x.shape and np.allclose(np.sort(shuffled, axis=1), np.sort(x, axis=1))
    y = x @ np.random.default_rng(2).normal(size=(5, 6))
    scores = score_region(x, y, np.full((3, 6), 0.9), ALPHAS, n_bootstrap=100, n_null=2)
    real, null = scores["psth_ridge"], scores["psth_ridge_shuffled_time"]
    assert real["raw"] > 0.95 and null["raw"] < real["raw"] - 0.3
    assert real["ci_low"] <= real["score"] <= real["ci_high"] and real["ceiling"] == pytest.approx(0.9)
    assert real["n_stimuli"] == 6 * 40 and real["n_neuroids"] == 6 and real["r_time"].shape == (40,)


def test_time_resolved_r_is_one_for_a_perfect_prediction_and_low_for_noise():
    y = np.random.default_rng(0).normal(size=(4, 10, 5))
    assert np.allclose(time_resolved_r(y, y), 1.0)
    noise = np.random.default_rng(1).normal(size=y.shape)
    assert abs(np.mean(time_resolved_r(noise, y))) < 0.3


def test_bootstrap_median_brackets_the_median():
    values = np.random.default_rng(0).normal(0.5, 0.1, 200)
    low, high = bootstrap_median(values, 500)
    assert low < np.median(values) < high and high - low < 0.1


def test_procrustes_and_rsa_are_one_for_a_rotated_scaled_copy_and_low_for_noise():
    from neurofit.encoding.timecourse import geometry, procrustes_similarity, rsa_similarity

    x = smooth_features().reshape(-1, 5)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(5, 5)))
    y = 3.0 * x @ rotation + 2.0
    assert procrustes_similarity(x, y) == pytest.approx(1.0, abs=1e-6)
    assert rsa_similarity(x, y) == pytest.approx(1.0, abs=1e-6)
    wider = np.hstack([y, np.zeros((len(y), 3))])  # different unit counts
    assert procrustes_similarity(x, wider) == pytest.approx(1.0, abs=1e-6)
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert procrustes_similarity(x, noise) < 0.5 and abs(rsa_similarity(x, noise)) < 0.2
    rows = geometry(smooth_features(), smooth_features() @ rotation)
    assert rows["procrustes"]["raw"] > rows["procrustes_shuffled_time"]["raw"]
    assert rows["rsa_condition_time"]["normalisation"] == "none"


def test_geometry_of_unit_subsets_equals_one_computation_per_subset():
    from neurofit.encoding.timecourse import (
        procrustes_of_subsets,
        procrustes_similarity,
        rsa_of_subsets,
        rsa_similarity,
    )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    y = x[:, :4] @ rng.normal(size=(4, 9)) + rng.normal(size=(60, 9))
    resampled = rng.integers(0, 9, (5, 9))  # units drawn twice too
    left_out = np.array([np.delete(np.arange(9), k) for k in range(9)])
    for subsets in (resampled, left_out):
        for fast, slow in ((procrustes_of_subsets, procrustes_similarity), (rsa_of_subsets, rsa_similarity)):
            expected = [slow(x, y[:, d]) for d in subsets]
            assert np.allclose(fast(x, y, subsets), expected, atol=1e-7, rtol=0), (fast.__name__, subsets.shape)


def test_the_jackknife_interval_of_a_mean_is_its_standard_error_interval():
    from neurofit.encoding.timecourse import jackknife_ci

    values = np.random.default_rng(0).normal(size=25)
    left_out = np.array([np.delete(values, k).mean() for k in range(25)])
    se = values.std(ddof=1) / np.sqrt(25)
    assert np.allclose(jackknife_ci(values.mean(), left_out), (values.mean() - 1.96 * se, values.mean() + 1.96 * se),
                       rtol=1e-4)
    assert np.isnan(jackknife_ci(0.5, np.array([0.4]))[0])


def test_geometry_cis_hold_their_estimate_and_separate_the_fit_from_its_null():
    from neurofit.encoding.timecourse import geometry

    rng = np.random.default_rng(3)
    x = smooth_features()
    y = x @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=x.shape[:2] + (12,))
    rows = geometry(x, y, seed=0)
    for name in ("procrustes", "rsa_condition_time"):
        fit, null = rows[name], rows[f"{name}_shuffled_time"]
        for row in (fit, null):
            assert row["ci_low"] < row["raw"] < row["ci_high"]
        assert null["ci_high"] < fit["ci_low"]
    one_unit = geometry(x, y[..., :1], seed=0)
    assert np.isnan(one_unit["procrustes"]["ci_low"])


def test_rsa_over_binned_rates_keeps_its_ties_whatever_the_arrays_layout():
    """Rates of binned counts make many distances equal in exact arithmetic; the rounding of their computation
    (here the centring of a strided view against a contiguous copy) must not break those ties one way or the other
    (it moved Spearman r by 1e-4 before)."""
    from neurofit.encoding.similarity import average_ranks
    from neurofit.encoding.timecourse import rsa_similarity

    rng = np.random.default_rng(0)
    for _ in range(5):
        rates = rng.poisson(2.0, (3, 2, 2, 90, 2)) / 43.0  # (split, half, condition, time, unit): 43 trials' rates
        copy = rates[..., np.array([True, True])]  # the same values in another array (the old code: up to 5e-3 apart)
        a, b = rates[2, 0].reshape(-1, 2), rates[2, 1].reshape(-1, 2)
        assert rsa_similarity(a, b) == rsa_similarity(copy[2, 0].reshape(-1, 2), copy[2, 1].reshape(-1, 2))
    assert np.array_equal(average_ranks(np.array([1.0, 1.0 + 1e-15, 2.0]), 1e-9), [1.5, 1.5, 3.0])
    assert np.array_equal(average_ranks(np.array([1.0, 1.0 + 1e-15, 2.0])), [1.0, 2.0, 3.0])


def test_shape_metrics_span_procrustes_to_cca():
    """Williams et al.'s partial whitening: alpha = 1 is Procrustes; alpha = 0 is invariant to any invertible map of
    either space and is the arccos of the canonical correlations' sum over the root of the two dimensions."""
    from neurofit.encoding.timecourse import geometry, procrustes_similarity, shape_similarity

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x @ rng.normal(size=(4, 3)) + 0.5 * rng.normal(size=(200, 3))
    stretch = rng.normal(size=(3, 3))
    assert shape_similarity(x, y, 1.0) == pytest.approx(procrustes_similarity(x, y), abs=1e-12)
    assert shape_similarity(x, y @ stretch, 0.0) == pytest.approx(shape_similarity(x, y, 0.0), abs=1e-10)
    assert abs(shape_similarity(x, y @ stretch, 1.0) - shape_similarity(x, y, 1.0)) > 0.01  # Procrustes is not
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    canonical = np.linalg.svd(qx.T @ qy, compute_uv=False)
    assert shape_similarity(x, y, 0.0) == pytest.approx(1 - 2 / np.pi * np.arccos(canonical.sum() / np.sqrt(12)))
    assert 0.0 < shape_similarity(x, y, 0.5) < 1.0
    rows = geometry(smooth_features(), smooth_features() @ rng.normal(size=(5, 6)), seed=0, shape_alphas=(0.0, 0.5))
    for name in ("shape_a0", "shape_a0.5"):
        assert rows[name]["ci_low"] < rows[name]["raw"] < rows[name]["ci_high"]
        assert rows[name]["raw"] > rows[f"{name}_shuffled_time"]["raw"]
