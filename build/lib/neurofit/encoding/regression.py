"""Ridge with per-target alphas as a fit/predict estimator and over outer splits (one shared Gram
matrix across all splits and folds), each split with its *training* score (inner CV on the split's
training stimuli only) for nested layer selection. PLS is :class:`neurofit.encoding.pls.KernelPLS`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from neurofit.encoding.backend import get_ops
from neurofit.encoding.ridge import DEFAULT_ALPHAS, Design, FitTargets, ridge_coefficients, ridge_cv

Splits = list[tuple[np.ndarray, np.ndarray]]


@dataclass
class SplitPrediction:
    """One outer split: predictions for its test stimuli and the training-only score."""

    prediction: np.ndarray  # (n_test, targets)
    train_score: float  # median over targets of the inner-CV r on the training stimuli
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # per-target values, e.g. the chosen alpha


class RidgeCV:
    """Ridge with one alpha per target chosen by inner K-fold CV (see :mod:`neurofit.encoding.ridge`)."""

    name = "ridge"

    def __init__(self, alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5, seed: int = 0,
                 backend: str = "auto", dtype: str = "mixed", device: str | None = None) -> None:
        self.alphas = np.asarray(alphas, dtype=np.float64)
        self.inner_folds = inner_folds
        self.seed = seed
        # "mixed": the alpha search (5 eigendecompositions per split) in float32, the refit in float64
        self.ops = get_ops(backend, "float32" if dtype == "mixed" else dtype, device)
        self.refit_ops = get_ops(backend, "float64", device) if dtype == "mixed" else None
        # float64 keeps the landed eigendecomposition refit (its tables are promised to 1e-10); mixed
        # refits by Cholesky per distinct alpha when that is cheaper
        self.refit_solver = "auto" if dtype == "mixed" else "eigh"

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeCV:
        design = Design(x, self.ops)
        search = ridge_cv(design, y - y.mean(0), np.arange(len(x)), None, self.alphas, self.inner_folds, self.seed)
        self.alpha_, self.inner_r_ = search.alpha, search.inner_r
        self.coef_, self.intercept_ = ridge_coefficients(x, y, self.alpha_, self.refit_ops or self.ops)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_

    def cross_validated(self, x: np.ndarray | Design, y: np.ndarray, splits: Splits, seed: int
                        ) -> list[SplitPrediction]:
        """All outer splits from one design (``x``, or a :class:`Design` shared with other
        callers): the Gram matrix of all stimuli is computed once. Inner folds of split ``k`` use
        ``seed + k``. Targets are independent (an alpha each), so any columns of ``y`` may be fit
        together; ``extras`` holds each target's alpha and inner-CV r."""
        return list(self.iter_cross_validated(x, y, splits, seed))

    def iter_cross_validated(self, x: np.ndarray | Design, y: np.ndarray, splits: Splits, seed: int
                             ) -> Iterator[SplitPrediction]:
        """:meth:`cross_validated` one split at a time (a caller that scores each split as it comes holds
        one split's predictions, not every split's)."""
        design = x if isinstance(x, Design) else Design(x, self.ops)
        for k, (train, test) in enumerate(splits):
            # a constant shift by the training mean removes cancellation in the running sums (and, unlike
            # the all-stimulus mean, leaves no trace of the test stimuli even in float32 rounding)
            shift = y[train].mean(0)
            # inner folds over the training stimuli in the split's own order; the targets are read as rows
            # of ``y``, block by block, so the split holds no shifted copy of its training rows
            search = ridge_cv(design, FitTargets(y, train, shift), train, test, self.alphas, self.inner_folds,
                              seed + k, refit_ops=self.refit_ops, refit_solver=self.refit_solver)
            prediction = search.prediction
            prediction += shift
            yield SplitPrediction(prediction, float(np.median(search.inner_r)),
                                  {"alpha": search.alpha, "inner_r": search.inner_r})
            del search, prediction  # not held while the next split is fit
