"""Batched NIPALS (kernel and feature forms) against scikit-learn's PLSRegression, fit by fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.cross_decomposition._pls import _get_first_singular_vectors_power_method
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from neurofit.encoding.pls import (
    KernelPLS,
    _power_method_iterate,
    feature_pls_predict_many,
    kernel_pls_predict_many,
)
from neurofit.encoding.ridge import Design, pearson_columns
from neurofit.encoding.splits import stimulus_splits


def data(n, p, t, seed=0, spread=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) + 2.0
    if spread is not None:  # feature scales: sets the gaps between singular values, so the iteration counts
        x *= spread
    y = x @ rng.normal(size=(p, t)) / np.sqrt(p) + rng.normal(size=(n, t)) + 1.0
    return x, y


def sklearn_predict(x_fit, y_fit, x_eval, components):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        prediction = PLSRegression(components, scale=False).fit(x_fit, y_fit).predict(x_eval)
    return prediction.reshape(len(x_eval), -1)


def close(got, want, rtol=1e-12):
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max())


def centred(x, fit, evaluate):
    mean = x[fit].mean(0)
    return x[fit] - mean, x[evaluate] - mean


@pytest.mark.parametrize(("n", "p", "t", "components"), [
    (90, 300, 7, 25), (60, 200, 1, 25), (200, 120, 40, 25), (50, 20, 4, 20), (150, 20, 1, 20), (150, 20, 5, 20),
    (120, 60, 130, 25)])  # wide and narrow, one target, more targets than stimuli, components = rank
def test_both_forms_predict_as_sklearn(n, p, t, components):
    x, y = data(n, p, t)
    fit, test = np.arange(n - 10), np.arange(n - 10, n)
    want = sklearn_predict(x[fit], y[fit], x[test], components)
    x_fit, x_eval = centred(x, fit, test)
    close(feature_pls_predict_many([x_fit], [x_eval], [y[fit]], [components])[0], want)
    if p > n / 2:  # the kernel form's ||w||^2 = a^T K a loses digits once X^T y ~ 0 (one target, components = rank)
        close(kernel_pls_predict_many([x_fit @ x_fit.T], [x_eval @ x_fit.T], [y[fit]], [components])[0], want)


def test_a_batch_of_problems_of_different_sizes_and_component_counts():
    x, y = data(80, 150, 6, seed=1)
    problems = [(np.arange(40), np.arange(40, 50)), (np.arange(5, 60), np.arange(60, 80)), (np.arange(1, 80, 2), [0])]
    counts = [3, 25, 10]
    want = [sklearn_predict(x[f], y[f], x[e], c) for (f, e), c in zip(problems, counts, strict=True)]
    parts = [centred(x, f, e) for f, e in problems]
    kernel = kernel_pls_predict_many([a @ a.T for a, _ in parts], [b @ a.T for a, b in parts],
                                     [y[f] for f, _ in problems], counts)
    feature = feature_pls_predict_many([a for a, _ in parts], [b for _, b in parts], [y[f] for f, _ in problems],
                                       counts)
    for got_k, got_f, expected in zip(kernel, feature, want, strict=True):
        close(got_k, expected)
        close(got_f, expected)


def test_power_method_takes_sklearns_iterations_and_iterate():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 30))
    x, _ = np.linalg.qr(x - x.mean(0))  # centred and orthonormal: X^T Y is the chosen B
    counts = []
    # the second / first singular value of X^T Y and the start's overlap with the first set the iteration count
    for ratio in (0.5, 0.9, 0.99, 0.998):
        for overlap in (0.7, 0.42, 0.1):
            u, _ = np.linalg.qr(rng.normal(size=(30, 3)))
            turn = np.array([[overlap, -np.sqrt(1 - overlap**2), 0], [np.sqrt(1 - overlap**2), overlap, 0], [0, 0, 1]])
            y = x @ (u * [1.0, ratio, 0.3] @ turn.T)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                want_w, _, want_iter = _get_first_singular_vectors_power_method(x, y, max_iter=500, tol=1e-06)
                cross = x.T @ y
                weights, n_iter = _power_method_iterate((cross.T @ cross)[None], np.array([0]), np.array([True]))
            w = x.T @ (y @ weights[0])
            assert n_iter[0] == want_iter
            np.testing.assert_allclose(w / np.linalg.norm(w), want_w, atol=1e-10)
            counts.append(want_iter)
    # many counts, across the blocks of ITER_BLOCK tests, the iteration cap among them
    assert len(set(counts)) > 8 and min(counts) < 20 and any(64 < c < 500 for c in counts) and max(counts) == 500


@pytest.mark.parametrize(("p", "solver"), [(300, "nipals (kernel form)"), (25, "nipals (feature form)")])
def test_cross_validation_equals_sklearn_per_split_and_inner_fold(p, solver):
    x, y = data(100, p, 5, seed=2)
    splits = stimulus_splits(100)
    pls = KernelPLS(25, p)
    design = Design(x)
    assert pls.solver(design) == solver
    got = pls.cross_validated(design, y, splits, inner_folds=5, seed=1)
    test_only = pls.cross_validated(design, y, splits, inner_folds=5, seed=1, train_score=False)
    one_per_batch = KernelPLS(25, p, batch_bytes=1).cross_validated(design, y, splits, inner_folds=5, seed=1)
    for k, (train, test) in enumerate(splits):
        train = np.sort(train)
        out_of_fold = np.empty((len(train), 5))
        for fit, valid in KFold(5, shuffle=True, random_state=1 + k).split(train):
            out_of_fold[valid] = sklearn_predict(x[train[fit]], y[train[fit]], x[train[valid]], 25)
        prediction, inner_r = got[k]
        close(prediction, sklearn_predict(x[train], y[train], x[test], 25))
        np.testing.assert_allclose(inner_r, pearson_columns(out_of_fold, y[train]), rtol=0, atol=1e-12)
        assert test_only[k][1] is None
        np.testing.assert_array_equal(test_only[k][0], prediction)
        close(one_per_batch[k][0], prediction, 1e-13)
        np.testing.assert_allclose(one_per_batch[k][1], inner_r, rtol=0, atol=1e-13)
