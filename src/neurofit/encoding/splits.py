"""Train/test splits over stimuli (never presentations: repeats of one image stay together)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

PRESETS = ("brainscore", "kfold")


def stimulus_splits(n_stimuli: int, preset: str = "brainscore", n_splits: int = 10, train_size: float = 0.9,
                    seed: int = 1, stratify: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index pairs over stimuli ordered by ``stimulus_id``.

    ``brainscore``: ``n_splits`` x StratifiedShuffleSplit(train_size, random_state=seed) on the
    ``stratify`` labels, ShuffleSplit with the same arguments without labels, as Brain-Score's
    ``Split`` (brainscore_vision/metric_helpers/transformations.py) builds them over the target
    assembly's ``stimulus_id`` values. ``kfold``: ``n_splits`` shuffled (stratified when labels are
    given) folds, as ``Split(kfold=True)``."""
    index = np.zeros(n_stimuli)  # Brain-Score splits a zeros array of the right length
    if preset == "brainscore":
        if stratify is not None:
            splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed)
            return list(splitter.split(index, stratify))
        return list(ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed).split(index))
    if preset == "kfold":
        if stratify is not None:
            return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(index, stratify))
        return list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(index))
    raise ValueError(f"unknown split preset {preset!r}; known: {list(PRESETS)}")
