"""scikit-learn's ``PLSRegression(scale=False)`` (NIPALS, the algorithm Brain-Score's ``pls_regression``
runs) in kernel form: the same iterates, from the stimulus x stimulus Gram matrix instead of the features.

NIPALS needs the features only through products with stimulus vectors: with ``a`` the stimulus-space
coefficients of the x weights (``w = X_k^T a``), the x score is ``t = K_k a`` and ``||w||^2 = a^T K_k a``,
and deflating ``X_k`` by its score is ``K_{k+1} = P K_k P`` with ``P = I - t t^T / t^T t``. The
prediction ``X_test W (L^T W)^+ Q^T`` becomes ``K_test B (diag(1/t^T t) T^T K_0 B)^+ Q^T`` with ``W = X_0^T B``.
Each iteration costs n^2 instead of 2 n p, and the Gram matrix of all stimuli is computed once per layer
for every split and inner fold (the per-fold centred Grams are taken from it, as for ridge).

The convergence test (``||w - w_old||^2 < tol``), the start (the first non-constant target column),
the zeroing of near-constant targets and the early stop on a constant residual are scikit-learn's,
so the number of iterations and the predictions are the same up to rounding. The sign flip
scikit-learn applies to each component leaves the predictions unchanged and is skipped.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import pinv
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from neurofit.encoding.ridge import Design, pearson_columns

MAX_ITER, TOL = 500, 1e-06  # PLSRegression's defaults


def kernel_pls_predict(k_ff: np.ndarray, k_ef: np.ndarray, y: np.ndarray, n_components: int) -> np.ndarray:
    """Predictions for the evaluation rows of ``PLSRegression(n_components, scale=False)`` fitted on the
    fit rows: ``k_ff`` / ``k_ef`` are the fit x fit / evaluation x fit products of the features centred
    on the fit rows' mean, ``y`` the fit rows' targets."""
    eps = np.finfo(np.float64).eps
    y_mean = y.mean(0)
    yk = y - y_mean
    kk = k_ff.copy()
    scores: list[np.ndarray] = []
    coefs: list[np.ndarray] = []
    y_loadings: list[np.ndarray] = []
    for _ in range(n_components):
        yk[:, np.all(np.abs(yk) < 10 * eps, axis=0)] = 0.0
        nonconstant = np.flatnonzero(np.any(np.abs(yk) > eps, axis=0))
        if not len(nonconstant):
            warnings.warn(f"y residual is constant at iteration {len(scores)}", stacklevel=2)
            break
        y_score = yk[:, nonconstant[0]]
        a_old = t_old = None
        for _ in range(MAX_ITER):
            a = y_score / (y_score @ y_score)
            t = kk @ a
            norm = np.sqrt(a @ t) + eps
            a, t = a / norm, t / norm
            y_weights = yk.T @ t / (t @ t)
            y_score = yk @ y_weights / (y_weights @ y_weights + eps)
            if yk.shape[1] == 1:
                break
            # ||w - w_old||^2 with w = X_k^T a; the first iteration compares with 100 (never converged)
            if a_old is not None and a @ t + a_old @ t_old - 2 * (a @ t_old) < TOL:
                break
            a_old, t_old = a, t
        else:
            warnings.warn("Maximum number of iterations reached", ConvergenceWarning, stacklevel=2)
        tt = t @ t
        # deflation of X by t as a projection of the Gram matrix: K <- P K P
        kt = kk @ t
        kk += (np.outer(t, t) * (t @ kt) / tt - np.outer(t, kt) - np.outer(kt, t)) / tt
        q = yk.T @ t / tt
        yk -= np.outer(t, q)
        scores.append(t)
        coefs.append(a)
        y_loadings.append(q)
    if not scores:
        return np.broadcast_to(y_mean, (len(k_ef), y.shape[1])).copy()
    t_mat, b, q_mat = np.column_stack(scores), np.column_stack(coefs), np.column_stack(y_loadings)
    tt = (t_mat * t_mat).sum(0)
    # w_k = X_k^T a_k = X_0^T P_k a_k, P_k projecting out the earlier (mutually orthogonal) scores
    for k in range(1, b.shape[1]):
        b[:, k] -= t_mat[:, :k] @ ((t_mat[:, :k].T @ b[:, k]) / tt[:k])
    loadings_w = (t_mat.T @ (k_ff @ b)) / tt[:, None]  # L^T W, with l_k = X_0^T t_k / t_k^T t_k
    return k_ef @ b @ pinv(loadings_w, check_finite=False) @ q_mat.T + y_mean


class KernelPLS:
    """``PLSRegression(n_components, scale=False)`` per outer split and inner fold from one shared Gram matrix."""

    name = "pls"

    def __init__(self, n_components: int, n_features: int) -> None:
        self.n_components, self.n_features = n_components, n_features

    def _predict(self, design: Design, y: np.ndarray, fit: np.ndarray, evaluate: np.ndarray) -> np.ndarray:
        k_ff, k_ef = design.centred_kernels(fit, evaluate)
        n = min(self.n_components, self.n_features, len(fit) - 1)  # as PLS (neurofit.encoding.regression)
        return kernel_pls_predict(np.asarray(k_ff), np.asarray(k_ef), y[fit], n)

    def cross_validated(self, design: Design, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
                        inner_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per split, ``(test predictions, inner-CV r per target on the training stimuli)``: the training
        stimuli in ``stimulus_id`` order, inner folds ``KFold(inner_folds, shuffle=True, seed + k)``."""
        out = []
        for k, (train, test) in enumerate(splits):
            train = np.sort(train)
            out_of_fold = np.empty((len(train), y.shape[1]))
            for inner_train, valid in KFold(inner_folds, shuffle=True, random_state=seed + k).split(train):
                out_of_fold[valid] = self._predict(design, y, train[inner_train], train[valid])
            out.append((self._predict(design, y, train, test), pearson_columns(out_of_fold, y[train])))
        return out
