"""The project's own ShuffleSplit and shuffled KFold: index for index scikit-learn's (fit jobs no longer import it)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedShuffleSplit

from neurofit.encoding.splits import kfold, shuffle_split, stimulus_splits


def _same(ours, theirs) -> None:
    theirs = list(theirs)
    assert len(ours) == len(theirs)
    for (train, test), (train_sk, test_sk) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, train_sk)
        np.testing.assert_array_equal(test, test_sk)


@pytest.mark.parametrize("n", [2, 3, 7, 10, 11, 50, 240, 641])
@pytest.mark.parametrize("train_size", [0.1, 0.5, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
def test_shuffle_split_is_scikit_learns(n, train_size, seed):
    if int(train_size * n) == 0:
        with pytest.raises(ValueError, match="empty"):
            shuffle_split(n, 10, train_size, seed)
        return
    _same(shuffle_split(n, 10, train_size, seed),
          ShuffleSplit(n_splits=10, train_size=train_size, random_state=seed).split(np.zeros(n)))


@pytest.mark.parametrize("n", [2, 5, 9, 10, 23, 216, 240])
@pytest.mark.parametrize("folds", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1, 2, 11, 99])
def test_kfold_is_scikit_learns(n, folds, seed):
    if folds > n:
        with pytest.raises(ValueError, match="folds"):
            kfold(n, folds, seed)
        return
    _same(kfold(n, folds, seed), KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n)))


def test_stimulus_splits_stratified_still_use_scikit_learn():
    labels = np.repeat(["a", "b", "c"], 20)
    _same(stimulus_splits(60, "brainscore", 5, 0.8, 3, stratify=labels),
          StratifiedShuffleSplit(n_splits=5, train_size=0.8, random_state=3).split(np.zeros(60), labels))
    with pytest.raises(ValueError, match="unknown split preset 'loo'"):
        stimulus_splits(60, "loo")
