"""Factorised readout: each neuroid reads a conv layer's ``(channel, y, x)`` map through one spatial
mask times one vector of feature weights (Klindt et al. 2017, the standard model class of V1 system
identification), instead of a free weight per channel and position as ridge has.

The mask is a 2-D Gaussian, as in the Gaussian readout of Lurz et al. 2021. For a given mask the
pooled features ``z = sum_yx mask[y, x] * x[:, c, y, x]`` are a ``(stimulus, channel)`` matrix, so the
feature weights are a ridge regression on them. Every neuroid first takes the (mask, penalty) pair with
the smallest generalised cross-validation (GCV) error on the training stimuli over a coarse grid (centre
on any map position, width one of ``MASK_SIGMAS`` of the map's side; one eigendecomposition per mask,
shared by all neuroids), then moves its mask to a better neighbour (half and quarter pixel steps of the
centre, widths times or over 1.3 then 1.15; ``REFINE_ROUNDS``) while GCV improves: a receptive field's centre is
not on the pixel grid, and on a 16 x 16 conv1 map the grid alone lost 3-4% of the explainable variance
of the simulator's V1 units. Nothing is fitted on test stimuli. The training score for nested layer
choice is the Pearson r of the exact leave-one-out predictions at the chosen mask and penalty.

A neuroid then has ``channels + 3`` parameters instead of ``channels * height * width``: a layer whose
channels do not contain the neuroid's features cannot make them up by mixing positions (a random conv
layer read out by ridge spans almost any linear image filter), and the fit needs far fewer stimuli.
It does not make every random layer distinguishable: on smooth low-contrast images (the simulator's
default 1/f clutter at 0.35) a random conv1's channels still span the hidden network's conv1; the
default config's stimuli have full-contrast, flatter-spectrum clutter (README, "What the default run
recovers").

A layer without spatial dims is a 1 x 1 map (the mask is a scalar, the readout is ridge on its
features); features reduced by ``features.reduce`` have no map and are refused.

Cost: the outer splits' mask searches run together (``cross_validated``), with the masks, penalties and scores of
one fit per split. Each coarse mask, and each distinct refinement candidate (candidates recur across splits and
neuroids: 1,000-1,700 distinct of 10,800 on the default run's layers), is pooled once over all stimuli; a split's
centred Gram matrices are downdates of all stimuli's by its left-out rows (as ridge's folds), and the products with
the responses come from the split's training responses alone (0 elsewhere: test responses leave no trace, not even
in rounding). Each split's final fit at its chosen masks is the plain one; neuroids that chose the same mask (a
vector layer: all) share its eigendecomposition. On the default run (240 stimuli, 90 neuroids, 10 splits) a layer's
10 fits take 0.1-2.2 CPU s instead of 1.4-4.7; most of what is left is the coarse grid's eigendecompositions (one
per mask and split) and the candidates' inverses (one per candidate and split).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from neurofit.encoding.regression import SplitPrediction, Splits
from neurofit.encoding.ridge import pearson_columns

MASK_SIGMAS = (0.05, 0.1, 0.2, 0.4)  # Gaussian mask widths of the coarse grid, as fractions of the map's side
# Ridge penalties relative to the mean squared singular value of the pooled features (scale-free).
RELATIVE_ALPHAS = np.logspace(-4, 2, 13)
# Local refinement of each neuroid's mask around its best coarse one, round by round: (centre step in map
# pixels, width factor); each round tries the mask moved by one step up, down, left or right and made wider or
# narrower by the factor, and keeps the best (GCV error). A receptive field's centre is not on the map's pixel grid
# nor its width on MASK_SIGMAS, and a mask off by half a pixel or a factor of 1.4 in width loses several percent
# of the explainable variance.
REFINE_ROUNDS = ((0.5, 1.3), (0.25, 1.15))
NEIGHBOURS = 6  # moves per round: centre up, down, left, right; width down, up
_MAX_CHUNK = 4_000_000  # elements of one block of pooled features (memory bound of the refinement)


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


def mask_grid(height: int, width: int, sigmas: Sequence[float] = MASK_SIGMAS) -> tuple[np.ndarray, np.ndarray]:
    """The coarse grid: centres ``(mask, 2)`` on every map position for each width in ``sigmas``
    (fractions of the map's longer side), and the widths in map pixels ``(mask,)``."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centres = np.stack([ys.ravel(), xs.ravel()], 1).astype(np.float64)
    pixels = [max(float(sigma) * max(height, width), 0.3) for sigma in sigmas]
    return np.tile(centres, (len(pixels), 1)), np.repeat(pixels, len(centres))


def gaussians(centres: np.ndarray, sigmas: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(mask, height * width)`` Gaussians at ``centres`` (map pixels, any real position) with widths
    ``sigmas`` (map pixels), each summing to 1."""
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    d2 = (centres[:, 0, None] - ys.ravel()[None]) ** 2 + (centres[:, 1, None] - xs.ravel()[None]) ** 2
    mask = np.exp(-d2 / (2 * np.asarray(sigmas, dtype=np.float64)[:, None] ** 2))
    return mask / mask.sum(1, keepdims=True)


def gaussian_masks(height: int, width: int, sigmas: Sequence[float] = MASK_SIGMAS) -> np.ndarray:
    """``(mask, height * width)``: a Gaussian centred on every map position for each width in
    ``sigmas`` (fractions of the map's longer side), each summing to 1. A 1 x 1 map has one mask."""
    if height * width == 1:
        return np.ones((1, 1))
    return gaussians(*mask_grid(height, width, sigmas), height, width)


def _neighbours(centres: np.ndarray, sigmas: np.ndarray, step: float, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per neuroid the masks one move from its current one (``NEIGHBOURS``): centres ``(neuroid, move, 2)``,
    widths ``(neuroid, move)``."""
    offsets = np.array([(-step, 0, 1), (step, 0, 1), (0, -step, 1), (0, step, 1), (0, 0, 1 / factor), (0, 0, factor)])
    return centres[:, None, :] + offsets[None, :, :2], np.maximum(sigmas[:, None] * offsets[None, :, 2], 0.3)


def _spectrum(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values ``(mask, r)`` and right singular vectors ``(mask, channel, r)`` of centred pooled
    features from their Gram matrices ``gram`` (mask, channel, channel): one small eigenproblem per mask."""
    s2, v = np.linalg.eigh(gram)
    s2 = np.where(s2 > 1e-10 * np.maximum(s2.max(1, keepdims=True), 1e-300), s2, 0.0)  # drop the null space
    return np.sqrt(s2), v


def _projections(s: np.ndarray, v: np.ndarray, zty: np.ndarray) -> np.ndarray:
    """``U^T y = diag(1 / s) V^T Z^T y`` without forming U: ``(mask, r, target)`` from ``zty``
    (mask, channel, target)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[:, :, None] > 0, (v.transpose(0, 2, 1) @ zty) / s[:, :, None], 0.0)


def _gcv(s: np.ndarray, uty: np.ndarray, total: np.ndarray, n: int, relative_alphas: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Generalised cross-validation error (Golub, Heath & Wahba 1979) ``(mask, target)`` at the best penalty of
    each, and that penalty. ``total``: each target's sum of squares (broadcast against ``(mask, target)``). The
    residual lives in the SVD basis, so no (mask, stimulus, target) array is formed; all penalties at once, the
    residuals of all of them one batched product."""
    s2 = s**2
    alphas = np.maximum(s2.mean(1, keepdims=True), 1e-300) * relative_alphas  # (mask, penalty)
    kept = alphas[:, :, None] / (s2[:, None, :] + alphas[:, :, None])  # (mask, penalty, r): the part the fit leaves
    outside = np.maximum(total - (uty**2).sum(1), 0.0)  # (mask, target): beyond the pooled span
    rss = outside[:, None, :] + kept**2 @ uty**2  # (mask, penalty, target)
    dof = 1 + (s2[:, None, :] / (s2[:, None, :] + alphas[:, :, None])).sum(2)  # intercept + effective channels
    err = rss / np.maximum(n - dof, 1e-9)[:, :, None] ** 2
    best = err.argmin(1)  # the first of equal errors (the smallest penalty)
    return np.take_along_axis(err, best[:, None, :], 1)[:, 0], np.take_along_axis(alphas, best, 1)


def _as_rows(centres: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """``(mask, 3)``: centre y, centre x and width of each mask, the key by which equal masks are found."""
    return np.concatenate([centres.reshape(-1, 2), sigmas.reshape(-1, 1)], 1)


def _candidate_errors(gram: np.ndarray, zty: np.ndarray, total: np.ndarray, alpha: np.ndarray, n: int) -> np.ndarray:
    """GCV error of each candidate mask from its centred training Gram matrix ``gram`` (candidate, channel,
    channel) and products ``zty`` (candidate, channel) with its neuroid's responses (sum of squares ``total``)
    at the neuroid's penalty ``alpha``: one small matrix inverse each (no eigenproblem)."""
    inverse = np.linalg.inv(gram + alpha[:, None, None] * np.eye(gram.shape[1]))
    w = (inverse @ zty[:, :, None])[:, :, 0]
    rss = total - (w * zty).sum(1) - alpha * (w**2).sum(1)  # |y - Z w|^2, as Z^T Z w = Z^T y - alpha w
    dof = 1 + gram.shape[1] - alpha * np.trace(inverse, axis1=1, axis2=2)
    return rss / np.maximum(n - dof, 1e-9) ** 2


class _TrainingSet:
    """One training set of the mask search. Its pooled features' Gram matrices are downdates of those of all
    stimuli (as ridge's folds: the stimuli left out cost the work, not those kept); the responses enter through
    the training rows only (centred on their mean, 0 elsewhere), so the test responses leave no trace."""

    def __init__(self, train: np.ndarray, y: np.ndarray) -> None:
        counts = np.bincount(train, minlength=len(y))
        self.n = len(train)
        self.rows = np.flatnonzero(counts != 1)  # stimuli left out (weight -1; one drawn twice would be +1)
        self.weights = counts[self.rows] - 1.0
        centred = y - y[train].mean(0)
        self.y = counts[:, None] * centred  # (stimulus, neuroid)
        self.total = (centred[train] ** 2).sum(0)

    def gram(self, rows: np.ndarray, gram_all: np.ndarray, z_sum: np.ndarray) -> np.ndarray:
        """Training Gram matrices ``(mask, channel, channel)`` of pooled features centred on the training mean,
        from those of all stimuli ``gram_all`` and their sums ``z_sum`` (features centred on the mean of all
        stimuli: no cancellation) and the features' ``rows`` (mask, ``self.rows``, channel)."""
        mean = (z_sum + self.weights @ rows) / self.n
        downdate = (rows.transpose(0, 2, 1) * self.weights) @ rows
        return gram_all + downdate - self.n * mean[:, :, None] * mean[:, None, :]


class FactorisedReadout:
    """Gaussian mask x feature weights per neuroid, chosen by leave-one-out error (module docstring)."""

    name = "factorised"

    def __init__(self, shape: Sequence[int], sigmas: Sequence[float] = MASK_SIGMAS,
                 relative_alphas: np.ndarray = RELATIVE_ALPHAS,
                 refine_rounds: Sequence[tuple[float, float]] = REFINE_ROUNDS) -> None:
        self.channels, self.height, self.width = map_shape(shape, int(np.prod(shape)))
        self.sigmas = tuple(float(v) for v in sigmas)
        if self.height * self.width == 1:  # one mask, the scalar 1 (centre and width 0)
            self.centres, self.sigma_pixels = np.zeros((1, 2)), np.zeros(1)
        else:
            self.centres, self.sigma_pixels = mask_grid(self.height, self.width, sigmas)
        self.masks = self._masks(self.centres, self.sigma_pixels)  # the coarse grid's (gaussian_masks)
        self.relative_alphas = np.asarray(relative_alphas, dtype=np.float64)
        self.refine_rounds = tuple((float(step), float(factor)) for step, factor in refine_rounds)

    def _masks(self, centres: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        if self.height * self.width == 1:
            return np.ones((len(centres), 1))
        return gaussians(centres, sigmas, self.height, self.width)

    def _maps(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), self.channels, self.height * self.width)

    def _pool(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``(mask, stimulus, channel)``: ``maps`` (stimulus, channel, position) pooled by each of ``masks``
        (one GEMM, its output already in this order; callers hold BLAS to one thread: threads only slow such
        small batches down, worst on a loaded machine)."""
        n = len(maps)
        return (masks @ maps.reshape(n * self.channels, -1).T).reshape(len(masks), n, self.channels)

    def _centred_pool(self, maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pooled features of all stimuli ``(mask, stimulus, channel)`` centred on their mean, their Gram
        matrices and sums (the sums over all stimuli that each training set downdates)."""
        z = self._pool(maps, masks)
        z -= z.mean(1, keepdims=True)
        return z, z.transpose(0, 2, 1) @ z, z.sum(1)

    def _coarse(self, maps: np.ndarray, sets: Sequence[_TrainingSet]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per training set and neuroid ``(set, neuroid)``: the smallest GCV error over the coarse grid, its
        penalty and its mask. Each mask is pooled once, over all stimuli, for every training set."""
        n_targets = sets[0].y.shape[1]
        err = np.full((len(sets), n_targets), np.inf)
        alpha, best = np.zeros(err.shape), np.zeros(err.shape, dtype=int)
        columns = np.arange(n_targets)
        per_block = max(1, _MAX_CHUNK // (len(maps) * self.channels))
        for first in range(0, len(self.masks), per_block):
            z, gram_all, z_sum = self._centred_pool(maps, self.masks[first:first + per_block])
            for k, t in enumerate(sets):
                s, v = _spectrum(t.gram(z[:, t.rows], gram_all, z_sum))
                uty = _projections(s, v, z.transpose(0, 2, 1) @ t.y)  # (mask, r, neuroid)
                e, a = _gcv(s, uty, t.total, t.n, self.relative_alphas)
                m = e.argmin(0)  # over this block's masks; earlier blocks win ties, as one argmin over all
                better = e[m, columns] < err[k]
                err[k, better], alpha[k, better], best[k, better] = e[m, columns][better], a[m, columns][better], \
                    first + m[better]
        return err, alpha, best

    def _candidate_products(self, maps: np.ndarray, t: _TrainingSet, centres: np.ndarray, sigmas: np.ndarray
                            ) -> np.ndarray:
        """``(neuroid * move, channel)``: each candidate mask's (``centres`` (neuroid, move, 2), ``sigmas``) pooled
        features times its neuroid's training responses, as the mask times the map's products with the responses
        (one GEMM per block of neuroids, not one pooling per candidate)."""
        n_targets = len(centres)
        x = maps.reshape(len(maps), -1)
        per_block = max(1, _MAX_CHUNK // x.shape[1])
        zty = np.empty((n_targets, NEIGHBOURS, self.channels))
        for first in range(0, n_targets, per_block):
            block = slice(first, first + per_block)
            masks = self._masks(centres[block].reshape(-1, 2), sigmas[block].ravel())
            masks = masks.reshape(-1, NEIGHBOURS, self.height * self.width)  # (neuroid, move, position)
            xty = (t.y[:, block].T @ x).reshape(len(masks), self.channels, -1)  # (neuroid, channel, position)
            zty[block] = masks @ xty.transpose(0, 2, 1)
        return zty.reshape(-1, self.channels)

    def _refine(self, maps: np.ndarray, sets: Sequence[_TrainingSet], centres: np.ndarray, sigmas: np.ndarray,
                err: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves each neuroid's mask ``(set, neuroid)`` to a neighbour (sub-pixel centre, intermediate width) with a
        smaller GCV error at the neuroid's penalty, round by round (``refine_rounds``). Candidates recur across
        training sets and neuroids (most neuroids keep their coarse mask from split to split): each distinct one is
        pooled once over all stimuli, in blocks of masks."""
        n_sets, n_targets = err.shape
        per_block = max(1, _MAX_CHUNK // (len(maps) * self.channels))
        for step, factor in self.refine_rounds:
            near_c, near_s = _neighbours(centres.reshape(-1, 2), sigmas.ravel(), step, factor)
            keys, which = np.unique(_as_rows(near_c, near_s), axis=0, return_inverse=True)
            which = which.reshape(n_sets, n_targets * NEIGHBOURS)
            near_c = near_c.reshape(n_sets, n_targets, NEIGHBOURS, 2)
            near_s = near_s.reshape(n_sets, n_targets, NEIGHBOURS)
            zty = [self._candidate_products(maps, t, near_c[k], near_s[k]) for k, t in enumerate(sets)]
            e = np.empty(which.shape)
            for first in range(0, len(keys), per_block):
                block = keys[first:first + per_block]
                z, gram_all, z_sum = self._centred_pool(maps, self._masks(block[:, :2], block[:, 2]))
                for k, t in enumerate(sets):
                    found = np.flatnonzero((which[k] >= first) & (which[k] < first + len(z)))
                    for chunk in np.array_split(found, max(1, -(-len(found) // per_block))):
                        key, neuroid = which[k, chunk] - first, chunk // NEIGHBOURS
                        gram = t.gram(z[key[:, None], t.rows], gram_all[key], z_sum[key])
                        e[k, chunk] = _candidate_errors(gram, zty[k][chunk], t.total[neuroid], alpha[k, neuroid], t.n)
            e = e.reshape(n_sets, n_targets, NEIGHBOURS)
            move = e.argmin(2)
            smallest = np.take_along_axis(e, move[:, :, None], 2)[:, :, 0]
            better = smallest < err
            moved = move[better]
            centres[better] = near_c[better, moved]
            sigmas[better] = near_s[better, moved]
            err[better] = smallest[better]
        return centres, sigmas

    def _final(self, maps: np.ndarray, y: np.ndarray, centres: np.ndarray, sigmas: np.ndarray) -> dict[str, Any]:
        """The readout fitted on one training set (``maps`` and ``y`` its stimuli) at each neuroid's chosen mask:
        feature weights V diag(s / (s^2 + alpha)) U^T y and the exact leave-one-out predictions (the training
        score). Neuroids that chose the same mask (a vector layer: all) share its pooled features and spectrum."""
        n = len(maps)
        y_mean = y.mean(0)
        yc = y - y_mean
        keys, which = np.unique(_as_rows(centres, sigmas), axis=0, return_inverse=True)
        pooled = self._pool(maps, self._masks(keys[:, :2], keys[:, 2]))  # (mask, stimulus, channel)
        x_mean = pooled.mean(1)  # (mask, channel)
        z = pooled - x_mean[:, None, :]
        s, v = _spectrum(z.transpose(0, 2, 1) @ z)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = np.where(s[:, None, :] > 0, (z @ v) / s[:, None, :], 0.0)  # (mask, n, r)
        s, v, u = s[which], v[which], u[which]  # each neuroid's
        uty = _projections(s, v, np.einsum("jnc,nj->jc", z[which], yc)[:, :, None])  # (neuroid, r, 1)
        # the penalty again, by GCV at the neuroid's final mask
        alpha = _gcv(s, uty, (yc**2).sum(0)[:, None], n, self.relative_alphas)[1][:, 0]
        uty = uty[:, :, 0]
        shrink = s**2 / (s**2 + alpha[:, None])  # (neuroid, r)
        coef = np.einsum("jcr,jr->jc", v, s / (s**2 + alpha[:, None]) * uty)
        fitted = np.einsum("jnr,jr->nj", u, shrink * uty)
        leverage = np.minimum(1 / n + np.einsum("jnr,jr->nj", u**2, shrink), 1 - 1e-9)  # ridge hat + intercept
        loo = yc - (yc - fitted) / (1 - leverage)
        return {"centres_": centres, "sigma_pixels_": sigmas, "mask_weights_": self._masks(centres, sigmas),
                "alpha_": alpha, "coef_": coef, "x_mean_": x_mean[which], "y_mean_": y_mean,
                "loo_r_": pearson_columns(loo, yc)}

    def _fit_each(self, maps: np.ndarray, y: np.ndarray, trains: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """The fitted readout's attributes for each training set (rows of ``maps`` and ``y``): the coarse grid and
        the refinement for all sets at once (each mask pooled once), then each set's own fit at its masks."""
        y = np.asarray(y, dtype=np.float64)
        sets = [_TrainingSet(train, y) for train in trains]
        err, alpha, best = self._coarse(maps, sets)
        centres, sigmas = self.centres[best], self.sigma_pixels[best]  # (set, neuroid, 2), (set, neuroid)
        if self.height * self.width > 1:
            centres, sigmas = self._refine(maps, sets, centres, sigmas, err, alpha)
        return [self._final(maps[train], y[train], c, s) for train, c, s in zip(trains, centres, sigmas, strict=True)]

    def fit(self, x: np.ndarray, y: np.ndarray) -> FactorisedReadout:
        """Fit on ``x`` (stimulus, channel * height * width) and ``y`` (stimulus, neuroid)."""
        with threadpool_limits(1):
            self.__dict__.update(self._fit_each(self._maps(x), y, [np.arange(len(x))])[0])
        return self

    def _predict(self, maps: np.ndarray) -> np.ndarray:
        z = self._pool(maps, self.mask_weights_) - self.x_mean_[:, None, :]  # each neuroid's own mask
        return np.einsum("jnc,jc->nj", z, self.coef_) + self.y_mean_

    def predict(self, x: np.ndarray) -> np.ndarray:
        with threadpool_limits(1):
            return self._predict(self._maps(x))

    def cross_validated(self, x: np.ndarray, y: np.ndarray, splits: Splits) -> list[SplitPrediction]:
        """Fit on each split's training stimuli, predict its test stimuli; the training score is
        the median leave-one-out r on the training stimuli (exact: no inner folds to draw)."""
        maps = self._maps(x)
        out = []
        with threadpool_limits(1):
            for (_, test), fitted in zip(splits, self._fit_each(maps, y, [train for train, _ in splits]), strict=True):
                self.__dict__.update(fitted)
                out.append(SplitPrediction(self._predict(maps[test]), float(np.median(self.loo_r_)),
                                           {"inner_r": self.loo_r_, "alpha": self.alpha_, "centre": self.centres_,
                                            "sigma": self.sigma_pixels_}))
        return out
