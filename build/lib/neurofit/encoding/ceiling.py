"""Noise ceilings from the repeats: split-half internal consistency with Spearman-Brown.

Replicates Brain-Score's ``InternalConsistency`` (brainscore_vision/metrics/internal_consistency/
ceiling.py): the unique repetition numbers (``np.unique``, as ``extract_coord(..., unique=True)``
in metric_helpers/transformations.py) are split by ``ShuffleSplit(n_splits=10, train_size=0.5,
random_state=1)``; each half is averaged over its repetitions per stimulus; Pearson r per neuroid
between the halves; Spearman-Brown with n=2 per neuroid; the caller takes the median over a
region's neuroids per split and the mean over splits. The same halves give the RSA and CKA
ceilings (split-half consistency of the RDMs / CKA between the halves, Spearman-Brown corrected,
as Brain-Score's ``_SplitHalvesConsistency`` does for any consistency metric)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from neurofit.encoding.ridge import pearson_columns
from neurofit.encoding.similarity import linear_cka, rsa
from neurofit.encoding.splits import shuffle_split


class CeilingError(ValueError):
    """The data cannot give a ceiling (e.g. fewer than two repeats)."""


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray:
    return factor * np.asarray(r) / (1 + (factor - 1) * np.asarray(r))


def split_halves(counts: np.ndarray, stimulus: np.ndarray, repeat: np.ndarray, n_splits: int = 10,
                 seed: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per split, the two halves' per-stimulus means ``(stimuli, neuroids)``, each averaged over the
    repeats it has, so ragged data (repeats missing for some stimuli) still works; stimuli absent
    from a half are left out of that split. Splits with fewer than 3 such stimuli are skipped."""
    repeats = np.unique(repeat)
    if len(repeats) < 2:
        raise CeilingError(f"a ceiling needs at least 2 repeats per stimulus; found {len(repeats)}")
    stimuli, stim_index = np.unique(stimulus, return_inverse=True)
    for half_a, half_b in shuffle_split(len(repeats), n_splits, 0.5, seed):
        means = []
        for half in (half_a, half_b):
            rows = np.isin(repeat, repeats[half])
            sums = np.zeros((len(stimuli), counts.shape[1]))
            np.add.at(sums, stim_index[rows], counts[rows])
            n = np.bincount(stim_index[rows], minlength=len(stimuli))
            with np.errstate(invalid="ignore"):
                means.append(sums / n[:, None])
        both = ~np.isnan(means[0][:, 0]) & ~np.isnan(means[1][:, 0])
        if both.sum() >= 3:
            yield means[0][both], means[1][both]


def split_half_ceiling(counts: np.ndarray, stimulus: np.ndarray, repeat: np.ndarray, n_splits: int = 10,
                       seed: int = 1) -> np.ndarray:
    """Per-split, per-neuroid Spearman-Brown corrected split-half reliability: (split, neuroid)."""
    out = [spearman_brown(pearson_columns(a, b)) for a, b in split_halves(counts, stimulus, repeat, n_splits, seed)]
    if not out:
        raise CeilingError("too few stimuli have repeats in both halves to estimate a ceiling")
    return np.asarray(out)


def split_half_similarity(counts: np.ndarray, stimulus: np.ndarray, repeat: np.ndarray, region: np.ndarray,
                          n_splits: int = 10, seed: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """``{"rsa"|"cka": {region: (split,)}}``: Spearman-Brown corrected split-half RDM
    consistency (Spearman) and CKA per region."""
    regions = list(dict.fromkeys(np.asarray(region).tolist()))
    out: dict[str, dict[str, list[float]]] = {"rsa": {r: [] for r in regions}, "cka": {r: [] for r in regions}}
    for a, b in split_halves(counts, stimulus, repeat, n_splits, seed):
        for r in regions:
            cols = np.asarray(region) == r
            out["rsa"][r].append(float(spearman_brown(rsa(a[:, cols], b[:, cols]))))
            out["cka"][r].append(float(spearman_brown(linear_cka(a[:, cols], b[:, cols]))))
    return {m: {r: np.asarray(v) for r, v in by_region.items()} for m, by_region in out.items()}
