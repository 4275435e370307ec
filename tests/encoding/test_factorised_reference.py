"""The factorised readout's shared mask search (all splits at once, each mask pooled once, Gram matrices as
downdates) against the readout fitted the plain way, split by split: the same masks, penalties, predictions and
training scores."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.encoding import factorised
from neurofit.encoding.factorised import (
    MASK_SIGMAS,
    REFINE_ROUNDS,
    RELATIVE_ALPHAS,
    FactorisedReadout,
    _neighbours,
    gaussians,
    map_shape,
    mask_grid,
)
from neurofit.encoding.ridge import pearson_columns
from neurofit.encoding.splits import kfold, shuffle_split


class PlainReadout:
    """The readout on one training set, written out plainly: every mask pooled from the training stimuli alone,
    every (mask, penalty) scored for every neuroid by its own ridge solve, every refinement candidate likewise."""

    def __init__(self, shape: tuple[int, ...], x: np.ndarray, y: np.ndarray) -> None:
        self.channels, self.height, self.width = map_shape(shape, x.shape[1])
        self.n = len(x)
        self.maps = x.reshape(len(x), self.channels, -1)
        self.y_mean = y.mean(0)
        self.yc = y - self.y_mean
        n_targets = y.shape[1]
        if self.height * self.width == 1:
            grid = np.zeros((1, 2)), np.zeros(1)
        else:
            grid = mask_grid(self.height, self.width, MASK_SIGMAS)
        err, alpha, best = np.full(n_targets, np.inf), np.zeros(n_targets), np.zeros(n_targets, dtype=int)
        for m, (centre, sigma) in enumerate(zip(*grid, strict=True)):
            for j in range(n_targets):
                e, a = self.best_penalty(self.pooled(centre, sigma), self.yc[:, j])
                if e < err[j]:
                    err[j], alpha[j], best[j] = e, a, m
        centres, sigmas = grid[0][best].copy(), grid[1][best].copy()
        if self.height * self.width > 1:
            for step, factor in REFINE_ROUNDS:
                near_c, near_s = _neighbours(centres, sigmas, step, factor)
                for j in range(n_targets):
                    e = [self.error(self.pooled(c, s), self.yc[:, j], alpha[j]) for c, s in zip(near_c[j], near_s[j],
                                                                                             strict=True)]
                    move = int(np.argmin(e))
                    if e[move] < err[j]:
                        centres[j], sigmas[j], err[j] = near_c[j, move], near_s[j, move], e[move]
        self.centres, self.sigmas = centres, sigmas
        self.alpha = np.array([self.best_penalty(self.pooled(c, s), self.yc[:, j])[1]
                               for j, (c, s) in enumerate(zip(centres, sigmas, strict=True))])

    def mask(self, centre: np.ndarray, sigma: float) -> np.ndarray:
        if self.height * self.width == 1:
            return np.ones(1)
        return gaussians(centre[None], np.array([sigma]), self.height, self.width)[0]

    def pooled(self, centre: np.ndarray, sigma: float) -> np.ndarray:
        z = self.maps @ self.mask(centre, sigma)
        return z - z.mean(0)

    def error(self, z: np.ndarray, y: np.ndarray, alpha: float) -> float:
        """GCV error of ridge on ``z`` at ``alpha``: residual / (n - 1 - effective channels)^2."""
        system = z.T @ z + alpha * np.eye(self.channels)
        hat = z @ np.linalg.solve(system, z.T)
        return float(((y - hat @ y) ** 2).sum() / (self.n - 1 - np.trace(hat)) ** 2)

    def best_penalty(self, z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        scale = np.linalg.eigvalsh(z.T @ z).clip(0).mean()  # penalties relative to the mean squared singular value
        errors = [self.error(z, y, relative * scale) for relative in RELATIVE_ALPHAS]
        return min(errors), RELATIVE_ALPHAS[int(np.argmin(errors))] * scale

    def predict_and_loo(self, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Test predictions and the leave-one-out r on the training stimuli (one refit without each)."""
        maps_test = x_test.reshape(len(x_test), self.channels, -1)
        prediction, loo_r = np.empty((len(x_test), len(self.alpha))), np.empty(len(self.alpha))
        for j, (c, s, a) in enumerate(zip(self.centres, self.sigmas, self.alpha, strict=True)):
            pooled = self.maps @ self.mask(c, s)
            mean = pooled.mean(0)
            z = pooled - mean
            coef = np.linalg.solve(z.T @ z + a * np.eye(self.channels), z.T @ self.yc[:, j])
            prediction[:, j] = (maps_test @ self.mask(c, s) - mean) @ coef + self.y_mean[j]
            loo = np.empty(self.n)
            for i in range(self.n):
                keep = np.arange(self.n) != i
                zk, yk = pooled[keep] - pooled[keep].mean(0), self.yc[keep, j] - self.yc[keep, j].mean()
                w = np.linalg.solve(zk.T @ zk + a * np.eye(self.channels), zk.T @ yk)
                loo[i] = (pooled[i] - pooled[keep].mean(0)) @ w + self.yc[keep, j].mean()
            loo_r[j] = pearson_columns(loo[:, None], self.yc[:, j:j + 1])[0]
        return prediction, loo_r


def planted_off_grid(shape: tuple[int, ...], n: int, n_units: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Maps and noisy units reading them through Gaussian masks off the grid (centres between pixels, widths
    between the grid's), some through a few channels, some through all."""
    rng = np.random.default_rng(seed)
    channels, height, width = map_shape(shape, int(np.prod(shape)))
    maps = rng.standard_normal((n, channels, height * width)) + 0.5  # a mean, as rectified features have
    if height * width == 1:
        masks = np.ones((n_units, 1))
    else:
        centres = rng.uniform(0.3, 0.7, (n_units, 2)) * [height - 1, width - 1] + 0.37
        masks = gaussians(centres, rng.uniform(0.07, 0.3, n_units) * max(height, width), height, width)
    weights = rng.standard_normal((n_units, channels)) * (rng.random((n_units, channels)) < 0.6)
    y = np.einsum("ncp,up,uc->nu", maps, masks, weights)
    return maps.reshape(n, -1), y + 0.3 * y.std(0) * rng.standard_normal(y.shape)


@pytest.mark.parametrize("chunk", [None, 3000], ids=["one block", "many blocks"])
@pytest.mark.parametrize("shape", [(4, 7, 5), (3, 6, 6), (6, 4, 4), (5,)])
def test_shared_mask_search_equals_the_plain_fit_of_each_split(shape, chunk, monkeypatch):
    if chunk:  # the coarse grid, the candidates and their scoring in many blocks
        monkeypatch.setattr(factorised, "_MAX_CHUNK", chunk)
    x, y = planted_off_grid(shape, 60, 10, seed=sum(shape))
    splits = kfold(60, 3, seed=2)[:2] + shuffle_split(60, 1, 0.8, seed=3)
    rng = np.random.default_rng(9)  # a training set that draws some stimuli twice (weights, not just left out)
    splits.append((np.sort(rng.choice(60, 50)), np.arange(55, 60)))
    fitted = FactorisedReadout(shape).cross_validated(x, y, splits)
    for (train, test), split in zip(splits, fitted, strict=True):
        plain = PlainReadout(shape, x[train], y[train])
        np.testing.assert_array_equal(split.extras["centre"], plain.centres)
        np.testing.assert_array_equal(split.extras["sigma"], plain.sigmas)
        np.testing.assert_allclose(split.extras["alpha"], plain.alpha, rtol=1e-10)
        prediction, loo_r = plain.predict_and_loo(x[test])
        np.testing.assert_allclose(split.prediction, prediction, rtol=1e-10, atol=1e-10 * np.abs(prediction).max())
        np.testing.assert_allclose(split.extras["inner_r"], loo_r, rtol=1e-10)


def test_the_masks_found_are_off_the_grid():
    # the comparison above would be empty if no neuroid moved off the grid
    x, y = planted_off_grid((4, 7, 5), 60, 5, seed=16)
    readout = FactorisedReadout((4, 7, 5)).fit(x, y)
    on_grid = (readout.centres_ == np.round(readout.centres_)).all(1)
    assert not on_grid.all(), readout.centres_
