"""Time-resolved encoding: ridge from a model's state over time to each neuroid's PSTH, cross-validated by condition.

Arrays are ``x: (condition, time, feature)`` and ``y: (condition, time, neuroid)``. Each outer fold holds out whole
conditions (a condition's time course is never split between training and test, so the temporal autocorrelation
of a PSTH cannot leak); the penalty is chosen per neuroid by an inner leave-one-condition-out over the training
conditions (over contiguous time blocks when only one training condition is left). Predictions of the held-out
conditions are pooled over folds and scored per neuroid (Pearson r over condition x time), and per time bin
(Pearson r over condition x neuroid of the values centred on each neuroid's mean: how well the population
pattern at that moment is predicted).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurofit.encoding.ridge import pearson_columns


@dataclass(frozen=True)
class TimecourseFit:
    prediction: np.ndarray  # (condition, time, neuroid), each condition predicted by the fold holding it out
    r: np.ndarray  # (neuroid,)
    r_time: np.ndarray  # (time,)
    alpha: np.ndarray  # (fold, neuroid)
    folds: list[np.ndarray]  # held-out condition indices of each fold


def condition_folds(n_conditions: int, n_folds: int | None = None, seed: int = 0) -> list[np.ndarray]:
    """Held-out condition indices per fold: leave-one-condition-out, or ``n_folds`` random groups of conditions."""
    if n_conditions < 2:
        raise ValueError(f"time-resolved encoding needs at least 2 conditions to hold one out; got {n_conditions}")
    if n_folds is None or n_folds >= n_conditions:
        return [np.array([c]) for c in range(n_conditions)]
    order = np.random.default_rng(seed).permutation(n_conditions)
    return [np.sort(part) for part in np.array_split(order, n_folds)]


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(0)
    sd = train.std(0)
    sd[sd == 0] = 1.0
    return [(a - mean) / sd for a in (train, *others)]


def _ridge_predictions(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alphas: np.ndarray
                       ) -> np.ndarray:
    """Predictions ``(alpha, test sample, neuroid)`` of ridge fits (intercept by centring) for every alpha."""
    x_train, x_test = _standardise(x_train, x_test)
    y_mean = y_train.mean(0)
    u, s, vt = np.linalg.svd(x_train, full_matrices=False)
    uty = u.T @ (y_train - y_mean)
    xv = x_test @ vt.T
    shrink = s[None, :] / (s[None, :] ** 2 + alphas[:, None])  # (alpha, component)
    return np.einsum("tk,ak,kn->atn", xv, shrink, uty) + y_mean


def _inner_alpha(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, block_time: int) -> np.ndarray:
    """Per neuroid, the alpha with the least held-out squared error over inner folds of ``(condition, time)`` data."""
    n_cond, n_time = x.shape[:2]
    if n_cond >= 2:
        splits = []
        for c in range(n_cond):
            held = np.arange(n_cond) == c
            splits.append((x[~held].reshape(-1, x.shape[-1]), y[~held].reshape(-1, y.shape[-1]),
                           x[held].reshape(-1, x.shape[-1]), y[held].reshape(-1, y.shape[-1])))
    else:
        blocks = np.array_split(np.arange(n_time), max(2, n_time // max(block_time, 1)))
        splits = []
        for block in blocks:
            held = np.isin(np.arange(n_time), block)
            splits.append((x[0, ~held], y[0, ~held], x[0, held], y[0, held]))
    error = np.zeros((len(alphas), y.shape[-1]))
    for x_fit, y_fit, x_held, y_held in splits:
        error += ((_ridge_predictions(x_fit, y_fit, x_held, alphas) - y_held[None]) ** 2).sum(1)
    return alphas[np.argmin(error, axis=0)]


def time_resolved_r(prediction: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per time bin, r over (condition, neuroid) after removing each neuroid's mean over condition x time."""
    centre = y.mean((0, 1), keepdims=True)
    pred, obs = prediction - centre, y - centre
    return pearson_columns(pred.transpose(1, 0, 2).reshape(y.shape[1], -1),
                           obs.transpose(1, 0, 2).reshape(y.shape[1], -1), axis=1, constant=np.nan)


def fit_timecourse(x: np.ndarray, y: np.ndarray, alphas: np.ndarray, n_folds: int | None = None, seed: int = 0,
                   block_time: int = 10) -> TimecourseFit:
    """Cross-validated ridge from ``x (condition, time, feature)`` to ``y (condition, time, neuroid)``."""
    if x.shape[:2] != y.shape[:2]:
        raise ValueError(f"features {x.shape[:2]} and responses {y.shape[:2]} differ in (condition, time)")
    x, y = x.astype(np.float64), y.astype(np.float64)
    folds = condition_folds(x.shape[0], n_folds, seed)
    prediction = np.empty_like(y)
    chosen = np.empty((len(folds), y.shape[-1]))
    for i, held in enumerate(folds):
        train = np.setdiff1d(np.arange(x.shape[0]), held)
        best = _inner_alpha(x[train], y[train], alphas, block_time)
        chosen[i] = best
        x_fit, y_fit = x[train].reshape(-1, x.shape[-1]), y[train].reshape(-1, y.shape[-1])
        x_held = x[held].reshape(-1, x.shape[-1])
        per_alpha = _ridge_predictions(x_fit, y_fit, x_held, np.unique(best))
        index = np.searchsorted(np.unique(best), best)
        pred = per_alpha[index, :, np.arange(y.shape[-1])].T  # (sample, neuroid), each neuroid at its alpha
        prediction[held] = pred.reshape(len(held), x.shape[1], -1)
    r = pearson_columns(prediction.reshape(-1, y.shape[-1]), y.reshape(-1, y.shape[-1]), constant=np.nan)
    return TimecourseFit(prediction=prediction, r=r, r_time=time_resolved_r(prediction, y), alpha=chosen,
                         folds=folds)


def shuffle_time(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The shuffled-time null: the same random permutation of time bins for every condition, so features keep their
    condition structure and marginal statistics but lose their alignment with the neural time course."""
    return x[:, np.random.default_rng(seed).permutation(x.shape[1])]


def bootstrap_median(values: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the median over neuroids (resampled with replacement)."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    draws = np.random.default_rng(seed).choice(values, size=(n, len(values)), replace=True)
    medians = np.median(draws, axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def score_region(x: np.ndarray, y: np.ndarray, reliability: np.ndarray, alphas: np.ndarray, n_folds: int | None = None,
                 seed: int = 0, n_bootstrap: int = 1000, n_null: int = 5, normalisation: str = "r/c"
                 ) -> dict[str, dict[str, object]]:
    """The fit and its shuffled-time null, summarised as the table does: median r over neuroids (raw), median
    ceiling, the ceiling-normalised score (``normalisation`` as in :func:`neurofit.encoding.fit.normalise`) with a
    bootstrap CI over neuroids; and r over time. ``reliability``: (split, neuroid) split-half ceilings."""
    from neurofit.encoding.fit import normalise

    ceiling_per_neuroid = np.nanmean(reliability, axis=0)
    ceiling = float(np.nanmedian(ceiling_per_neuroid))
    fit = fit_timecourse(x, y, alphas, n_folds, seed)
    nulls = [fit_timecourse(shuffle_time(x, seed + 1 + k), y, alphas, n_folds, seed) for k in range(n_null)]
    null_r = np.nanmean([null.r for null in nulls], axis=0)
    null_time = np.nanmean([null.r_time for null in nulls], axis=0)
    out = {}
    for metric, r, r_time in (("psth_ridge", fit.r, fit.r_time),
                              ("psth_ridge_shuffled_time", null_r, null_time)):
        raw = float(np.nanmedian(r))
        low, high = bootstrap_median(r, n_bootstrap, seed)
        out[metric] = {"raw": raw, "ceiling": ceiling, "score": float(normalise(raw, ceiling, normalisation)),
                       "ci_low": float(normalise(low, ceiling, normalisation)),
                       "ci_high": float(normalise(high, ceiling, normalisation)), "normalisation": normalisation,
                       "n_neuroids": int(y.shape[-1]), "n_stimuli": int(y.shape[0] * y.shape[1]),
                       "r": r, "r_time": r_time}
    return out


# -- population geometry over condition x time ------------------------------------------------------------------
def procrustes_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """1 - 2/pi x the angular Procrustes shape distance (Williams et al. 2021) between two ``(sample, units)``
    configurations of the same samples (here condition x time): both centred and scaled to unit Frobenius norm, the
    distance is ``arccos(||X^T Y||_*)`` (the nuclear norm is the best overlap over rotations, so unit counts may
    differ). 1: the same shape up to rotation and scale; 0: orthogonal."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return float("nan")
    overlap = np.linalg.svd((x / nx).T @ (y / ny), compute_uv=False).sum()
    return float(1 - 2 / np.pi * np.arccos(np.clip(overlap, -1.0, 1.0)))


WHITENING_RANK = 1e-10  # covariance eigenvalues below this fraction of the largest are a null space (pseudo-inverse)


def partially_whitened(x: np.ndarray, alpha: float) -> np.ndarray:
    """Centred ``x`` (sample, units) times ``(alpha I + (1 - alpha) C)^(-1/2)``, ``C`` its covariance over samples
    (Williams et al. 2021): alpha = 1 leaves it as it is, alpha = 0 whitens it (directions of no variance dropped)."""
    xc = x - x.mean(0)
    eigen, vectors = np.linalg.eigh(xc.T @ xc / len(xc))
    scale = alpha + (1 - alpha) * np.clip(eigen, 0.0, None)
    keep = scale > WHITENING_RANK * scale.max() if scale.max() > 0 else np.zeros(len(scale), dtype=bool)
    return xc @ (vectors[:, keep] / np.sqrt(scale[keep])) @ vectors[:, keep].T


def shape_similarity(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """1 - 2/pi x the angular shape distance with partial whitening ``alpha`` (Williams et al. 2021, "Generalized
    shape metrics on neural representations"): the arccos of the nuclear norm of ``phi(X)^T phi(Y)`` over both
    Frobenius norms, ``phi`` :func:`partially_whitened`. alpha = 1 is :func:`procrustes_similarity` (invariant to
    rotations and scale); alpha = 0 compares the whitened spaces (invariant to any invertible linear map, as CCA:
    the overlap is the sum of the canonical correlations over the root of the two dimensions)."""
    fx, fy = partially_whitened(x, alpha), partially_whitened(y, alpha)
    nx, ny = np.linalg.norm(fx), np.linalg.norm(fy)
    if nx == 0 or ny == 0:
        return float("nan")
    overlap = np.linalg.svd((fx / nx).T @ (fy / ny), compute_uv=False).sum()
    return float(1 - 2 / np.pi * np.arccos(np.clip(overlap, -1.0, 1.0)))


DISTANCE_TIES = 1e-9  # distances within this fraction of the largest tie: binned rates make many equal in exact
# arithmetic, and the rounding of their computation (centring, summation order) would otherwise break those ties
# one way or the other (the same values in two arrays gave Spearman r up to 5e-3 apart)


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    from neurofit.encoding.similarity import average_ranks

    ranks = average_ranks(values, DISTANCE_TIES)
    return ranks - ranks.mean()


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two centred rank vectors; NaN where either is constant (as ``spearmanr``)."""
    denom = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / denom) if denom > 0 else float("nan")


def rsa_similarity(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation between the RDMs (Euclidean distances between samples, e.g. condition x time points)
    of two ``(sample, units)`` arrays: invariant to rotations, translations and a global scale of either space.
    Distances equal up to rounding are ties (:data:`DISTANCE_TIES`)."""
    from scipy.spatial.distance import pdist

    return _rank_correlation(_centred_ranks(pdist(x - x.mean(0))), _centred_ranks(pdist(y - y.mean(0))))


DRAW_BLOCK = 1 << 21  # entries of one block of draws' work arrays (16 MB in float64)


def procrustes_of_subsets(x: np.ndarray, y: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``procrustes_similarity(x, y[:, d])`` for each row ``d`` of ``draws`` (indices of ``y``'s units: subsets
    or resamples of them), from one product: a drawn configuration's overlap with ``x`` is the nuclear norm of
    the drawn columns of ``X^T Y``, the sum of the square roots of the eigenvalues of their Gram matrix, a
    sub-matrix of ``(X^T Y)^T (X^T Y)``; its norm is the root of the drawn columns' sums of squares."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    nx = np.linalg.norm(xc)
    cross = xc.T @ yc
    gram, squares = cross.T @ cross, (yc * yc).sum(0)
    out = np.full(len(draws), np.nan)
    k = draws.shape[1]
    step = max(1, DRAW_BLOCK // (k * k))
    for start in range(0, len(draws), step):
        d = draws[start:start + step]
        eigen = np.linalg.eigvalsh(gram[d[:, :, None], d[:, None, :]])
        ny = np.sqrt(squares[d].sum(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            overlap = np.sqrt(np.clip(eigen, 0.0, None)).sum(1) / (nx * ny)
        ok = (nx > 0) & (ny > 0)
        out[start:start + step] = np.where(ok, 1 - 2 / np.pi * np.arccos(np.clip(overlap, -1.0, 1.0)), np.nan)
    return out


def rsa_of_subsets(x: np.ndarray, y: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """``rsa_similarity(x, y[:, d])`` for each row ``d`` of ``draws``: the model's distances are ranked once; a
    draw's squared distances are its units' multiplicities times the per-unit squared differences of every pair
    (one product per block of draws), whose roots are ranked per draw, ties as :func:`rsa_similarity` has them.
    NaN where a draw's distances are all equal (as ``spearmanr``)."""
    from scipy.spatial.distance import pdist

    ranks_x = _centred_ranks(pdist(x - x.mean(0)))
    i, j = np.triu_indices(len(y), k=1)  # pdist's order of the pairs
    yc = y - y.mean(0)
    squared = (yc[i] - yc[j]) ** 2  # (pairs, units)
    counts = np.zeros((len(draws), y.shape[1]))
    np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1.0)
    out = np.empty(len(draws))
    step = max(1, DRAW_BLOCK // len(i))
    for start in range(0, len(draws), step):
        for row, squares in enumerate(counts[start:start + step] @ squared.T, start):
            out[row] = _rank_correlation(ranks_x, _centred_ranks(np.sqrt(np.maximum(squares, 0.0))))
    return out


def jackknife_ci(raw: float, left_out: np.ndarray, z: float = 1.959963984540054) -> tuple[float, float]:
    """``raw`` +- ``z`` delete-one jackknife standard errors, from the statistic with each unit left out in turn
    (NaN where fewer than two are finite)."""
    left_out = left_out[np.isfinite(left_out)]
    n = len(left_out)
    if n < 2 or not np.isfinite(raw):
        return float("nan"), float("nan")
    se = float(np.sqrt((n - 1) / n * ((left_out - left_out.mean()) ** 2).sum()))
    return raw - z * se, raw + z * se


def shape_metrics(alphas: tuple[float, ...]) -> dict[str, Any]:
    """``{metric name: (similarity, similarity of unit subsets)}`` of the partial-whitening shape metrics
    ``shape_a<alpha>``, each subset computed on its own (the whitening depends on the units kept)."""
    def of_subsets(alpha: float) -> Any:
        return lambda x, y, draws: np.array([shape_similarity(x, y[:, d], alpha) for d in draws])

    return {f"shape_a{alpha:g}": (functools.partial(shape_similarity, alpha=alpha), of_subsets(alpha))
            for alpha in alphas}


def geometry_metrics(shape_alphas: tuple[float, ...] = ()) -> dict[str, Any]:
    """``{name: (similarity, similarity of unit subsets)}`` of every geometry metric."""
    return {"procrustes": (procrustes_similarity, procrustes_of_subsets),
            "rsa_condition_time": (rsa_similarity, rsa_of_subsets), **shape_metrics(shape_alphas)}


def geometry_ceilings(halves: np.ndarray, shape_alphas: tuple[float, ...] = ()) -> dict[str, float]:
    """Each geometry metric's ceiling from the split halves of a region's trials ``(split, half, condition, time,
    neuroid)`` (``neurofit.neural.trials.split_halves``): the population's geometry in one half against the
    other, Spearman-Brown corrected as the image RSA / CKA ceilings are (Brain-Score's split-half consistency),
    mean over splits."""
    from neurofit.encoding.ceiling import spearman_brown

    n = halves.shape[-1]
    return {name: float(np.mean([spearman_brown(fn(a.reshape(-1, n), b.reshape(-1, n))) for a, b in halves]))
            for name, (fn, _) in geometry_metrics(shape_alphas).items()}


def geometry(x: np.ndarray, y: np.ndarray, seed: int = 0, ceilings: dict[str, float] | None = None,
             shape_alphas: tuple[float, ...] = ()) -> dict[str, dict[str, object]]:
    """Procrustes and RSA similarity of model ``x`` and neural ``y`` over condition x time (and the shape metrics
    of ``shape_alphas``), each with its shuffled-time null; score = raw (``normalisation: none``), beside each
    metric's ceiling from ``ceilings`` (``{metric: value}``: the neural halves' split-half consistency; default
    NaN). The CI is the estimate +- 1.96
    delete-one-neuroid jackknife standard errors: a bootstrap over neuroids draws units twice, which distorts
    the population's geometry itself (both similarities fell under resampling, so its percentile intervals
    missed the estimate: README, trials), where leaving one unit out does not."""
    flat_y = y.reshape(-1, y.shape[-1])
    n = y.shape[-1]
    left_out = np.array([np.delete(np.arange(n), k) for k in range(n)]).reshape(n, n - 1)
    out = {}
    for name, (fn, subsets) in geometry_metrics(shape_alphas).items():
        for suffix, features in (("", x), ("_shuffled_time", shuffle_time(x, seed + 1))):
            flat_x = features.reshape(-1, features.shape[-1])
            raw = fn(flat_x, flat_y)
            low, high = jackknife_ci(raw, subsets(flat_x, flat_y, left_out)) if n > 1 else (np.nan, np.nan)
            ceiling = float((ceilings or {}).get(name, np.nan))
            out[name + suffix] = {"raw": raw, "ceiling": ceiling, "score": raw, "ci_low": low, "ci_high": high,
                                  "normalisation": "none", "n_neuroids": int(n),
                                  "n_stimuli": int(y.shape[0] * y.shape[1])}
    return out
