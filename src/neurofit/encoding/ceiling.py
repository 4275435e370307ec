"""Noise ceilings from the repeats: split-half internal consistency with Spearman-Brown."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import ShuffleSplit

from neurofit.encoding.ridge import pearson_columns


class CeilingError(ValueError):
    """The data cannot give a ceiling (e.g. fewer than two repeats)."""


def spearman_brown(r: np.ndarray, factor: float = 2.0) -> np.ndarray:
    return factor * r / (1 + (factor - 1) * r)


def split_half_ceiling(counts: np.ndarray, stimulus: np.ndarray, repeat: np.ndarray, n_splits: int = 10,
                       seed: int = 1) -> np.ndarray:
    """Per-split, per-neuroid Spearman-Brown corrected split-half reliability: (split, neuroid).

    The unique repeat numbers are split in halves (ShuffleSplit, train_size=0.5); each half is
    averaged per stimulus over the repeats it has, so ragged data (repeats missing for some
    stimuli) still works; stimuli absent from a half are left out of that split."""
    repeats = np.unique(repeat)
    if len(repeats) < 2:
        raise CeilingError(f"a ceiling needs at least 2 repeats per stimulus; found {len(repeats)}")
    stimuli, stim_index = np.unique(stimulus, return_inverse=True)
    out = []
    for half_a, half_b in ShuffleSplit(n_splits=n_splits, train_size=0.5, random_state=seed).split(repeats):
        means = []
        for half in (half_a, half_b):
            rows = np.isin(repeat, repeats[half])
            sums = np.zeros((len(stimuli), counts.shape[1]))
            np.add.at(sums, stim_index[rows], counts[rows])
            n = np.bincount(stim_index[rows], minlength=len(stimuli))
            with np.errstate(invalid="ignore"):
                means.append(sums / n[:, None])
        both = ~np.isnan(means[0][:, 0]) & ~np.isnan(means[1][:, 0])
        if both.sum() < 3:
            continue
        out.append(spearman_brown(pearson_columns(means[0][both], means[1][both])))
    if not out:
        raise CeilingError("too few stimuli have repeats in both halves to estimate a ceiling")
    return np.asarray(out)
