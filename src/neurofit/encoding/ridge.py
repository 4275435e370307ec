"""Ridge regression with a per-neuroid penalty chosen by inner cross-validation.

One eigendecomposition of the Gram matrix (stimuli <= features) or one SVD of the design
(stimuli > features) per fold serves every alpha and every neuroid. Features and targets are
centred on the training set, which is exactly an unpenalised intercept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold

DEFAULT_ALPHAS = np.logspace(-2, 6, 17)


@dataclass
class _Spectral:
    """What a fold's fit keeps: ``pred(alpha) = left @ (right * shrink(alpha)[:, None])``."""

    basis: np.ndarray  # (n_eval, k): evaluation rows projected on the spectral basis
    projected_targets: np.ndarray  # (k, targets)
    spectrum: np.ndarray  # (k,)
    dual: bool

    def shrink(self, alpha: float) -> np.ndarray:
        if self.dual:  # eigenvalues s of X X^T: (K_eval U) diag(1/(s+alpha)) U^T Y
            return 1.0 / (self.spectrum + alpha)
        return self.spectrum / (self.spectrum**2 + alpha)  # singular values of X

    def predict(self, alpha: float, columns: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.basis @ (self.projected_targets[:, columns] * self.shrink(alpha)[:, None])


def _spectral(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray) -> _Spectral:
    n, p = x_train.shape
    if n <= p:
        gram = x_train @ x_train.T
        eigvals, eigvecs = np.linalg.eigh(gram)
        eigvals = np.clip(eigvals, 0, None)
        return _Spectral((x_eval @ x_train.T) @ eigvecs, eigvecs.T @ y_train, eigvals, dual=True)
    u, s, vt = np.linalg.svd(x_train, full_matrices=False)
    return _Spectral(x_eval @ vt.T, u.T @ y_train, s, dual=False)


def _centre(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_mean, y_mean = x.mean(0), y.mean(0)
    return x - x_mean, y - y_mean, x_mean, y_mean


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  alpha: float | np.ndarray) -> np.ndarray:
    """Predictions of ridge with intercept; ``alpha`` a scalar or one value per target."""
    xc, yc, x_mean, y_mean = _centre(x_train, y_train)
    spectral = _spectral(xc, yc, x_test - x_mean)
    alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (y_train.shape[1],))
    pred = np.empty((x_test.shape[0], y_train.shape[1]), dtype=np.result_type(x_train, y_train))
    for value in np.unique(alphas):
        cols = np.flatnonzero(alphas == value)
        pred[:, cols] = spectral.predict(float(value), cols)
    return pred + y_mean


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of matching columns (0 where a column is constant)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    denom = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / denom
    return np.where(denom > 0, r, 0.0)


@dataclass
class AlphaSearch:
    """Per-neuroid alpha chosen by inner CV, and the inner-CV score it reached."""

    alpha: np.ndarray  # (targets,)
    inner_r: np.ndarray  # (targets,): Pearson r of the out-of-fold predictions at that alpha


def choose_alphas(x: np.ndarray, y: np.ndarray, alphas: np.ndarray = DEFAULT_ALPHAS,
                  inner_folds: int = 5, seed: int = 0) -> AlphaSearch:
    """Per-neuroid alpha minimising the out-of-fold squared error over ``inner_folds`` folds."""
    errors = np.zeros((len(alphas), y.shape[1]))
    out_of_fold = np.zeros((len(alphas),) + y.shape)
    for train, valid in KFold(inner_folds, shuffle=True, random_state=seed).split(x):
        xc, yc, x_mean, y_mean = _centre(x[train], y[train])
        spectral = _spectral(xc, yc, x[valid] - x_mean)
        for i, alpha in enumerate(alphas):
            pred = spectral.predict(float(alpha)) + y_mean
            errors[i] += ((pred - y[valid]) ** 2).sum(0)
            out_of_fold[i][valid] = pred
    best = errors.argmin(0)
    cols = np.arange(y.shape[1])
    inner_r = pearson_columns(out_of_fold[best, :, cols].T, y)
    return AlphaSearch(alpha=np.asarray(alphas)[best], inner_r=inner_r)
