"""Train/test splits over stimuli (never presentations: repeats of one image stay together).

:func:`shuffle_split` and :func:`kfold` give exactly scikit-learn's ``ShuffleSplit`` and shuffled
``KFold`` index arrays for an integer seed (tested against them) without importing scikit-learn,
which costs a fit job about 0.5 s of its 1-3 s; the stratified splitters are still scikit-learn's,
imported only when labels are given."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from math import floor

import numpy as np

PRESETS = ("brainscore", "kfold")
_STATES = threading.local()


def _legacy_rng(seed: int) -> np.random.RandomState:
    """``RandomState(seed)``'s stream from one kept instance per thread, reseeded (``RandomState.seed``: the
    same legacy seeding): a new instance first draws OS entropy for a SeedSequence it then discards, 0.09 ms
    of a fold split's 0.1 ms (1.3 ms under tracemalloc), 20x the reseeding. Used up before the caller returns."""
    rng = getattr(_STATES, "rng", None)
    if rng is None:
        rng = _STATES.rng = np.random.RandomState()
    rng.seed(seed)
    return rng


def shuffle_split(n_samples: int, n_splits: int, train_size: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``ShuffleSplit(n_splits, train_size=train_size, random_state=seed).split(range(n_samples))``:
    each split a fresh permutation of one ``RandomState(seed)``, its first ``n - floor(train_size n)``
    entries the test set and the rest the training set (both in permutation order)."""
    if not 0 < train_size < 1:
        raise ValueError(f"train_size={train_size} must be a fraction in (0, 1)")
    n_train = floor(train_size * n_samples)
    n_test = n_samples - n_train
    if n_train == 0:
        raise ValueError(f"train_size={train_size} of {n_samples} samples leaves the training set empty")
    rng = _legacy_rng(seed)
    splits = []
    for _ in range(n_splits):
        permutation = rng.permutation(n_samples)
        splits.append((permutation[n_test:], permutation[:n_test]))
    return splits


def kfold(n_samples: int, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``KFold(n_splits, shuffle=True, random_state=seed).split(range(n_samples))``: the indices
    shuffled by ``RandomState(seed)`` and cut into ``n_splits`` folds (the first ``n % n_splits`` one
    larger); each fold's test and training indices in ascending order."""
    return list(iter_kfold(n_samples, n_splits, seed))


def iter_kfold(n_samples: int, n_splits: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`kfold`'s folds made one at a time (a caller that uses each once holds one fold's indices, not
    all of them: n_samples x 8 bytes, not n_splits times that). Checks its arguments when called."""
    if not 2 <= n_splits <= n_samples:
        raise ValueError(f"{n_splits} folds need 2 <= folds <= the number of samples ({n_samples})")
    order = np.arange(n_samples)
    _legacy_rng(seed).shuffle(order)
    sizes = np.full(n_splits, n_samples // n_splits, dtype=int)
    sizes[: n_samples % n_splits] += 1

    def folds() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        start = 0
        for size in sizes:
            test = np.zeros(n_samples, dtype=bool)
            test[order[start:start + size]] = True
            yield np.flatnonzero(~test), np.flatnonzero(test)
            del test
            start += size

    return folds()


def stimulus_splits(n_stimuli: int, preset: str = "brainscore", n_splits: int = 10, train_size: float = 0.9,
                    seed: int = 1, stratify: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index pairs over stimuli ordered by ``stimulus_id``.

    ``brainscore``: ``n_splits`` x StratifiedShuffleSplit(train_size, random_state=seed) on the
    ``stratify`` labels, ShuffleSplit with the same arguments without labels, as Brain-Score's
    ``Split`` (brainscore_vision/metric_helpers/transformations.py) builds them over the target
    assembly's ``stimulus_id`` values. ``kfold``: ``n_splits`` shuffled (stratified when labels are
    given) folds, as ``Split(kfold=True)``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown split preset {preset!r}; known: {list(PRESETS)}")
    if stratify is None:
        if preset == "brainscore":
            return shuffle_split(n_stimuli, n_splits, train_size, seed)
        return kfold(n_stimuli, n_splits, seed)
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    index = np.zeros(n_stimuli)  # Brain-Score splits a zeros array of the right length
    if preset == "brainscore":
        splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed)
        return list(splitter.split(index, stratify))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(index, stratify))
