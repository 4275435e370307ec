"""Per-neuroid split-half reliability over random splits of each stimulus' repeats."""

from __future__ import annotations

import numpy as np

from neurofit.encoding.ceiling import spearman_brown


class RepeatsError(ValueError):
    """Too few repeats for a reliability (noise ceiling) estimate."""


def split_half_reliability(responses: np.ndarray, stimulus_ids: np.ndarray, n_splits: int = 10,
                           seed: int = 1) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per neuroid (column of ``responses``).

    In each split every stimulus' presentations are shuffled and cut in two halves of equal size
    (an odd one out is left out); the halves' per-stimulus means are correlated across stimuli. The
    correlation is averaged over splits, then corrected. Stimuli shown once are left out; a neuroid
    with no variance across stimuli gets NaN."""
    ids, stim = np.unique(np.asarray(stimulus_ids), return_inverse=True)
    per_stimulus = np.bincount(stim, minlength=len(ids))
    usable = per_stimulus >= 2
    if usable.sum() < 3:
        raise RepeatsError(f"a reliability needs at least 3 stimuli shown at least twice; found {usable.sum()} "
                           f"(repeats per stimulus: max {per_stimulus.max() if len(ids) else 0})")
    half = per_stimulus // 2
    rows = usable[stim]
    values, stim = np.asarray(responses, dtype=np.float64)[rows], stim[rows]
    rng = np.random.default_rng(seed)
    correlations = []
    for _ in range(n_splits):
        # Rank of each presentation among its stimulus' presentations, in a random order.
        order = np.lexsort((rng.random(len(stim)), stim))
        rank = np.empty(len(stim), dtype=np.int64)
        starts = np.searchsorted(stim[order], np.arange(len(ids)))
        rank[order] = np.arange(len(stim)) - starts[stim[order]]
        means = []
        for part in (rank < half[stim], (rank >= half[stim]) & (rank < 2 * half[stim])):
            sums = np.zeros((len(ids), values.shape[1]))
            np.add.at(sums, stim[part], values[part])
            means.append(sums[usable] / half[usable][:, None])
        correlations.append(_pearson(*means))
    return spearman_brown(np.mean(correlations, axis=0))


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
