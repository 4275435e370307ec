"""fit_metric for every metric: artefact layout, null behaviour, resamples, no double dipping."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.encoding.fit import fit_metric, normalise, stimulus_labels

FAST = {"n_boot": 100, "n_permutations": 100, "n_splits": 5}


def linear_data(n=120, p=60, t=12, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    return x, x @ rng.normal(size=(p, t)) / np.sqrt(p) + noise * rng.normal(size=(n, t))


@pytest.mark.parametrize("metric", ["ridge", "pls", "rsa", "cka"])
def test_every_metric_scores_signal_and_not_shuffled_targets(metric, labelled):
    x, y = linear_data(noise=0.5)
    features, responses, _ = labelled(x, y)
    fit = fit_metric(metric, features, responses, **FAST)
    assert fit.attrs["metric"] == metric and fit.attrs["n_neuroids"] == 12 and fit.attrs["n_stimuli"] == 120
    assert fit["test_score"].dims == ("split",) and fit["train_score"].dims == ("split",)
    assert fit["boot_both"].shape == (100, 5) and fit["null"].shape == (100, 5)
    assert fit["test_score"].mean() > 0.2
    p_value = (1 + (fit["null"].mean("split") >= fit["test_score"].mean()).sum()) / 101
    assert p_value < 0.05
    shuffled = responses.copy(data=responses.values[np.random.default_rng(5).permutation(120)])
    null_fit = fit_metric(metric, features, shuffled, **FAST)
    assert abs(float(null_fit["test_score"].mean())) < 0.1
    if metric in ("ridge", "pls"):
        assert fit["test_r"].shape == (5, 12)
        np.testing.assert_allclose(fit["test_score"], np.median(fit["test_r"], axis=1))


def test_train_score_never_sees_the_test_stimuli(labelled):
    x, y = linear_data()
    features, responses, _ = labelled(x, y)
    fit = fit_metric("ridge", features, responses, n_splits=3, train_size=0.8, n_boot=10, n_permutations=10)
    from neurofit.encoding.splits import stimulus_splits

    _, test = stimulus_splits(120, n_splits=3, train_size=0.8)[0]
    changed = responses.copy(data=responses.values.copy())
    changed.values[test] = np.random.default_rng(9).normal(size=(len(test), 12)) * 10
    refit = fit_metric("ridge", features, changed, n_splits=3, train_size=0.8, n_boot=10, n_permutations=10)
    # identical up to rounding: a constant shift of all targets is removed first (shift invariant)
    assert float(refit["train_score"][0]) == pytest.approx(float(fit["train_score"][0]), abs=1e-12)
    np.testing.assert_array_equal(refit["alpha"][0], fit["alpha"][0])
    assert float(refit["test_score"][0]) != float(fit["test_score"][0])


def test_resamples_are_paired_across_layers_and_centre_on_the_score(labelled):
    x, y = linear_data()
    features, responses, _ = labelled(x, y)
    a = fit_metric("ridge", features, responses, **FAST)
    b = fit_metric("ridge", features.copy(data=features.values * 2 + 1), responses, **FAST)
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
