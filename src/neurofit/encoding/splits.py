"""Train/test splits over stimuli (never presentations: repeats of one image stay together)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedShuffleSplit


def stimulus_splits(n_stimuli: int, preset: str = "brainscore", n_splits: int = 10, train_size: float = 0.9,
                    seed: int = 1, stratify: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index pairs over stimuli ordered by ``stimulus_id``.

    ``brainscore``: ``n_splits`` x (Stratified)ShuffleSplit(train_size, random_state=seed), as
    Brain-Score's cross-validation does; ``kfold``: ``n_splits`` shuffled folds."""
    index = np.arange(n_stimuli)
    if preset == "brainscore":
        if stratify is not None:
            splitter = StratifiedShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed)
            return list(splitter.split(index, stratify))
        return list(ShuffleSplit(n_splits=n_splits, train_size=train_size, random_state=seed).split(index))
    if preset == "kfold":
        return list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(index))
    raise ValueError(f"unknown split preset {preset!r}; known: ['brainscore', 'kfold']")
