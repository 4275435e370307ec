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
BATCH_BELOW = 300  # training stimuli below which a split's inner folds run as one batched NIPALS (measured)


def kernel_pls_predict(k_ff: np.ndarray, k_ef: np.ndarray, y: np.ndarray, n_components: int) -> np.ndarray:
    """Predictions for the evaluation rows of ``PLSRegression(n_components, scale=False)`` fitted on the
    fit rows: ``k_ff`` / ``k_ef`` are the fit x fit / evaluation x fit products of the features centred
    on the fit rows' mean, ``y`` the fit rows' targets."""
    return kernel_pls_predict_many([k_ff], [k_ef], [y], n_components)[0]


def kernel_pls_predict_many(k_ffs: list[np.ndarray], k_efs: list[np.ndarray], ys: list[np.ndarray],
                            n_components: int) -> list[np.ndarray]:
    """:func:`kernel_pls_predict` for several problems at once (e.g. the inner folds of a split): their
    Gram matrices are zero-padded to one size (a zero row adds nothing to any product), so each NIPALS
    step is one batched product for all problems; each problem stops iterating at its own convergence."""
    eps = np.finfo(np.float64).eps
    size, batch, n_targets = max(len(k) for k in k_ffs), len(k_ffs), ys[0].shape[1]
    kk = np.zeros((batch, size, size))
    yk = np.zeros((batch, size, n_targets))
    y_means = [y.mean(0) for y in ys]
    for i, (k, y) in enumerate(zip(k_ffs, ys, strict=True)):
        kk[i, :len(k), :len(k)] = k
        yk[i, :len(y)] = y - y_means[i]
    live = np.ones(batch, dtype=bool)  # problems whose targets still have a non-constant residual
    scores, coefs, loadings, used = [], [], [], []
    rows = np.arange(batch)
    for _ in range(n_components):
        yk[np.broadcast_to(np.all(np.abs(yk) < 10 * eps, axis=1, keepdims=True), yk.shape)] = 0.0
        nonconstant = np.any(np.abs(yk) > eps, axis=1)  # (batch, targets)
        if np.any(live & ~nonconstant.any(1)):
            warnings.warn(f"y residual is constant at iteration {len(scores)}", stacklevel=2)
        live &= nonconstant.any(1)
        if not live.any():
            break
        y_score = yk[rows, :, nonconstant.argmax(1)]  # the first non-constant column of each problem
        a, t = _nipals_first_vectors(kk, yk, y_score, live, eps)
        tt = np.einsum("bi,bi->b", t, t)
        tt[~live] = 1.0  # finished problems: t = 0, nothing deflates
        kt = np.matmul(kk, t[:, :, None])[:, :, 0]
        t_kt = np.einsum("bi,bi->b", t, kt)
        # deflation of X by t as a projection of the Gram matrix: K <- P K P
        kk += (t[:, :, None] * t[:, None, :] * (t_kt / tt)[:, None, None] - t[:, :, None] * kt[:, None, :]
               - kt[:, :, None] * t[:, None, :]) / tt[:, None, None]
        q = np.einsum("bit,bi->bt", yk, t) / tt[:, None]
        yk -= t[:, :, None] * q[:, None, :]
        scores.append(t)
        coefs.append(a)
        loadings.append(q)
        used.append(live.copy())
    out = []
    for i, (k_ff, k_ef) in enumerate(zip(k_ffs, k_efs, strict=True)):
        keep = [c for c in range(len(scores)) if used[c][i]]
        if not keep:
            out.append(np.broadcast_to(y_means[i], (len(k_ef), n_targets)).copy())
            continue
        n = len(k_ff)
        t_mat = np.column_stack([scores[c][i, :n] for c in keep])
        b = np.column_stack([coefs[c][i, :n] for c in keep])
        q_mat = np.column_stack([loadings[c][i] for c in keep])
        tt = (t_mat * t_mat).sum(0)
        # w_k = X_k^T a_k = X_0^T P_k a_k, P_k projecting out the earlier (mutually orthogonal) scores
        for k in range(1, b.shape[1]):
            b[:, k] -= t_mat[:, :k] @ ((t_mat[:, :k].T @ b[:, k]) / tt[:k])
        loadings_w = (t_mat.T @ (k_ff @ b)) / tt[:, None]  # L^T W, with l_k = X_0^T t_k / t_k^T t_k
        out.append(k_ef @ b @ pinv(loadings_w, check_finite=False) @ q_mat.T + y_means[i])
    return out


def _nipals_first_vectors(kk: np.ndarray, yk: np.ndarray, y_score: np.ndarray, live: np.ndarray, eps: float
                          ) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``_get_first_singular_vectors_power_method`` (mode A) in kernel form for each
    live problem: ``(a, t)`` with x weights ``X_k^T a`` and x scores ``t``; finished problems get zeros."""
    a = np.zeros_like(y_score)
    t = np.zeros_like(y_score)
    running = live.copy()
    a_old = t_old = None
    for iteration in range(MAX_ITER):
        with np.errstate(invalid="ignore", divide="ignore"):  # finished problems divide 0 by 0; masked below
            a_new = y_score / np.einsum("bi,bi->b", y_score, y_score)[:, None]
            t_new = np.matmul(kk, a_new[:, :, None])[:, :, 0]  # batched BLAS products
            norm = np.sqrt(np.einsum("bi,bi->b", a_new, t_new)) + eps
            a_new, t_new = a_new / norm[:, None], t_new / norm[:, None]
            y_weights = np.matmul(t_new[:, None, :], yk)[:, 0] / np.einsum("bi,bi->b", t_new, t_new)[:, None]
            y_norm = np.einsum("bt,bt->b", y_weights, y_weights) + eps
            score_new = np.matmul(yk, y_weights[:, :, None])[:, :, 0] / y_norm[:, None]
        a[running], t[running] = a_new[running], t_new[running]
        y_score = np.where(running[:, None], score_new, y_score)
        if yk.shape[2] == 1:
            return a, t
        # ||w - w_old||^2 with w = X_k^T a; the first iteration compares with 100 (never converged)
        if a_old is not None:
            diff = (np.einsum("bi,bi->b", a, t) + np.einsum("bi,bi->b", a_old, t_old)
                    - 2 * np.einsum("bi,bi->b", a, t_old))
            running &= ~(diff < TOL)
        if not running.any():
            return a, t
        a_old, t_old = a.copy(), t.copy()
        if iteration == MAX_ITER - 1:
            warnings.warn("Maximum number of iterations reached", ConvergenceWarning, stacklevel=3)
    return a, t


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
            folds = list(KFold(inner_folds, shuffle=True, random_state=seed + k).split(train))
            kernels = [design.centred_kernels(train[fit], train[valid]) for fit, valid in folds]
            n = min(self.n_components, self.n_features, min(len(fit) for fit, _ in folds) - 1)
            sizes = {min(self.n_components, self.n_features, len(fit) - 1) for fit, _ in folds}
            out_of_fold = np.empty((len(train), y.shape[1]))
            # small folds: Python's per-step overhead dominates, so the folds go together (they must share a
            # component count); large folds: products dominate, and each fold stops at its own convergence
            if len(sizes) == 1 and len(train) < BATCH_BELOW:
                predictions = kernel_pls_predict_many([np.asarray(kf) for kf, _ in kernels],
                                                      [np.asarray(ke) for _, ke in kernels],
                                                      [y[train[fit]] for fit, _ in folds], n)
            else:
                predictions = [self._predict(design, y, train[fit], train[valid]) for fit, valid in folds]
            for (_, valid), prediction in zip(folds, predictions, strict=True):
                out_of_fold[valid] = prediction
            out.append((self._predict(design, y, train, test), pearson_columns(out_of_fold, y[train])))
        return out
