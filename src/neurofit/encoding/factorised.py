"""Factorised readout: each neuroid reads a conv layer's ``(channel, y, x)`` map through one spatial
mask times one vector of feature weights (Klindt et al. 2017, the standard model class of V1 system
identification), instead of a free weight per channel and position as ridge has.

The mask is a 2-D Gaussian, as in the Gaussian readout of Lurz et al. 2021: its centre is any map
position and its width one of ``MASK_SIGMAS`` (fractions of the map's side). For a given mask the
pooled features ``z = sum_yx mask[y, x] * x[:, c, y, x]`` are a ``(stimulus, channel)`` matrix shared
by all neuroids, so the feature weights are a ridge regression on them. Every neuroid takes the
(mask, penalty) pair with the smallest generalised cross-validation error on the training stimuli
(from one eigendecomposition per mask), so nothing is fitted on test stimuli. The training score for nested layer
choice is the Pearson r of the exact leave-one-out predictions at that choice.

A neuroid then has ``channels + 3`` parameters instead of ``channels * height * width``: a layer whose
channels do not contain the neuroid's features cannot make them up by mixing positions (a random conv
layer read out by ridge spans almost any linear image filter), and the fit needs far fewer stimuli.
It does not make every random layer distinguishable: on the simulator's smooth images a random conv1's
channels still span the hidden network's conv1 (README, "What the default run recovers").

A layer without spatial dims is a 1 x 1 map (the mask is a scalar, the readout is ridge on its
features); features reduced by ``features.reduce`` have no map and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from neurofit.encoding.regression import SplitPrediction, Splits
from neurofit.encoding.ridge import pearson_columns

MASK_SIGMAS = (0.05, 0.1, 0.2, 0.4)  # Gaussian mask widths, as fractions of the map's side
# Ridge penalties relative to the mean squared singular value of the pooled features (scale-free).
RELATIVE_ALPHAS = np.logspace(-4, 2, 13)


def map_shape(shape: Sequence[int] | None, n_features: int, source: str = "features") -> tuple[int, int, int]:
    """``(channels, height, width)`` of a layer whose features are ``shape`` flattened; a vector
    layer ``(channels,)`` is a 1 x 1 map. Refuses features with no known map."""
    if not shape:
        raise ValueError(f"{source}: the factorised metric needs the layer's output shape (the 'output_shape' "
                         "attribute the features stage writes); features reduced by features.reduce "
                         "(sparse_random, pca_images, gram) have no spatial map: drop 'factorised' from "
                         "encoding.metrics or set features.reduce to null")
    dims = tuple(int(d) for d in shape)
    if len(dims) == 1:
        dims = (dims[0], 1, 1)
    if len(dims) != 3 or int(np.prod(dims)) != n_features:
        raise ValueError(f"{source}: the factorised metric reads (channel, y, x) maps; the layer's output shape "
                         f"{list(shape)} does not give its {n_features} features as one")
    return dims  # type: ignore[return-value]


def gaussian_masks(height: int, width: int, sigmas: Sequence[float] = MASK_SIGMAS) -> np.ndarray:
    """``(mask, height * width)``: a Gaussian centred on every map position for each width in
    ``sigmas`` (fractions of the map's longer side), each summing to 1. A 1 x 1 map has one mask."""
    if height * width == 1:
        return np.ones((1, 1))
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centres = np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float64)
    masks = []
    for sigma in sigmas:
        s = max(float(sigma) * max(height, width), 0.3)
        d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)  # (centre, position)
        mask = np.exp(-d2 / (2 * s**2))
        masks.append(mask / mask.sum(1, keepdims=True))
    return np.concatenate(masks)


class FactorisedReadout:
    """Gaussian mask x feature weights per neuroid, chosen by leave-one-out error (module docstring)."""

    name = "factorised"

    def __init__(self, shape: Sequence[int], sigmas: Sequence[float] = MASK_SIGMAS,
                 relative_alphas: np.ndarray = RELATIVE_ALPHAS) -> None:
        self.channels, self.height, self.width = map_shape(shape, int(np.prod(shape)))
        self.sigmas = tuple(float(v) for v in sigmas)
        self.masks = gaussian_masks(self.height, self.width, sigmas)
        self.relative_alphas = np.asarray(relative_alphas, dtype=np.float64)

    def _pooled(self, x: np.ndarray) -> np.ndarray:
        """``(mask, stimulus, channel)`` features pooled by every mask."""
        maps = np.asarray(x, dtype=np.float64).reshape(len(x), self.channels, self.height * self.width)
        with threadpool_limits(1):
            return np.einsum("ncp,kp->knc", maps, self.masks, optimize=True)

    def fit(self, x: np.ndarray, y: np.ndarray) -> FactorisedReadout:
        """Fit on ``x`` (stimulus, channel * height * width) and ``y`` (stimulus, neuroid)."""
        y = np.asarray(y, dtype=np.float64)
        pooled = self._pooled(x)
        self.x_mean_ = pooled.mean(1)  # (mask, channel)
        self.y_mean_ = y.mean(0)
        z = pooled - self.x_mean_[:, None, :]
        yc = y - self.y_mean_
        # one small eigenproblem per mask; threads only slow such batches down (worst on a loaded machine)
        with threadpool_limits(1):
            s2, v = np.linalg.eigh(z.transpose(0, 2, 1) @ z)  # (mask, r), (mask, channel, r)
            s2 = np.where(s2 > 1e-10 * s2.max(1, keepdims=True), s2, 0.0)  # rank-deficient maps: drop null space
            s = np.sqrt(s2)
            with np.errstate(invalid="ignore", divide="ignore"):
                # U^T y = diag(1 / s) V^T Z^T y, without forming U
                uty = np.where(s[:, :, None] > 0, (v.transpose(0, 2, 1) @ (z.transpose(0, 2, 1) @ yc)) / s[:, :, None],
                               0.0)  # (mask, r, neuroid)
        scale = np.maximum((s**2).mean(1, keepdims=True), 1e-300)  # (mask, 1)
        n_targets = y.shape[1]
        # generalised cross-validation (Golub, Heath & Wahba 1979) picks each neuroid's (mask, penalty): the
        # residual lives in the SVD basis, so no (mask, stimulus, neuroid) array is formed
        outside = np.maximum((yc**2).sum(0) - (uty**2).sum(1), 0.0)  # (mask, neuroid): beyond the pooled span
        best_err = np.full(n_targets, np.inf)
        best_mask = np.zeros(n_targets, dtype=int)
        best_alpha = np.zeros(n_targets)
        for relative in self.relative_alphas:
            alpha = relative * scale  # (mask, 1)
            kept = alpha / (s**2 + alpha)  # (mask, r): the part of each component the fit leaves out
            rss = outside + ((kept[:, :, None] * uty) ** 2).sum(1)  # (mask, neuroid)
            dof = 1 + (s**2 / (s**2 + alpha)).sum(1, keepdims=True)  # intercept + effective channels
            err = rss / np.maximum(len(y) - dof, 1e-9) ** 2
            k = err.argmin(0)
            better = err[k, np.arange(n_targets)] < best_err
            best_err[better] = err[k[better], np.flatnonzero(better)]
            best_mask[better] = k[better]
            best_alpha[better] = alpha[k[better], 0]
        # feature weights of each neuroid's (mask, penalty), V diag(s / (s^2 + alpha)) U^T y, and its exact
        # leave-one-out predictions (the training score)
        loo = np.empty_like(yc)
        coef = np.empty((n_targets, self.channels))
        for j in range(n_targets):
            k = best_mask[j]
            with np.errstate(invalid="ignore", divide="ignore"):
                u = np.where(s[k] > 0, z[k] @ v[k] / s[k], 0.0)  # (n, r)
            coef[j] = v[k] @ (s[k] / (s[k] ** 2 + best_alpha[j]) * uty[k, :, j])
            shrink = s[k] ** 2 / (s[k] ** 2 + best_alpha[j])
            fitted = u @ (shrink * uty[k, :, j])
            leverage = np.minimum(1 / len(y) + (u**2) @ shrink, 1 - 1e-9)  # ridge hat matrix + intercept
            loo[:, j] = yc[:, j] - (yc[:, j] - fitted) / (1 - leverage)
        self.mask_, self.alpha_, self.coef_ = best_mask, best_alpha, coef
        self.loo_r_ = pearson_columns(loo, yc)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        maps = np.asarray(x, dtype=np.float64).reshape(len(x), self.channels, self.height * self.width)
        pooled = np.einsum("ncp,jp->jnc", maps, self.masks[self.mask_], optimize=True)  # each neuroid's mask
        z = pooled - self.x_mean_[self.mask_][:, None, :]
        return np.einsum("jnc,jc->nj", z, self.coef_) + self.y_mean_

    def cross_validated(self, x: np.ndarray, y: np.ndarray, splits: Splits) -> list[SplitPrediction]:
        """Fit on each split's training stimuli, predict its test stimuli; the training score is
        the median leave-one-out r on the training stimuli (exact: no inner folds to draw)."""
        out = []
        for train, test in splits:
            self.fit(x[train], y[train])
            out.append(SplitPrediction(self.predict(x[test]), float(np.median(self.loo_r_)),
                                       {"inner_r": self.loo_r_, "alpha": self.alpha_, "mask": self.mask_}))
        return out
