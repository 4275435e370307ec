"""The encoding stages' settings (config ``encoding:`` and ``trials.encoding:``), defaults written once.

:class:`EncodingSettings` is what one fit job takes (splits, ridge penalties, inner folds, precision,
PLS components, resampling); :class:`CeilingSettings` the noise-ceiling job's; :class:`TrialEncodingSettings`
the time-resolved fit's. Each default equals the schema's (``tests/test_settings.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurofit.settings import Settings


@dataclass(frozen=True)
class SplitSettings(Settings):
    """Train/test splits of the stimuli (:func:`neurofit.encoding.splits.stimulus_splits`)."""

    SCHEMA_KEY = "encoding.splits"
    preset: str = "brainscore"
    n_splits: int = 10
    train_size: float = 0.9
    seed: int = 1
    stratify_coords: tuple[str, ...] = ("object_name", "category")


@dataclass(frozen=True)
class AlphaGrid(Settings):
    """Ridge penalties ``logspace(min_exp, max_exp, n)``."""

    SCHEMA_KEY = "encoding.alphas"
    min_exp: float = -2
    max_exp: float = 6
    n: int = 17

    def values(self) -> np.ndarray:
        return np.logspace(self.min_exp, self.max_exp, self.n)


@dataclass(frozen=True)
class BootstrapSettings(Settings):
    SCHEMA_KEY = "encoding.bootstrap"
    n: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class PermutationSettings(Settings):
    SCHEMA_KEY = "encoding.permutations"
    n: int = 1000


@dataclass(frozen=True)
class EncodingSettings(Settings):
    """One fit job's settings: everything under ``encoding:`` that changes a fit's numbers."""

    SCHEMA_KEY = "encoding"
    # the metric is the job's wildcard; normalisation and ci are the tables' (report.settings), ceiling the
    # ceiling job's
    ELSEWHERE = frozenset({"metrics", "normalisation", "ci", "ceiling"})
    splits: SplitSettings = field(default_factory=SplitSettings)
    alphas: AlphaGrid = field(default_factory=AlphaGrid)
    inner_folds: int = 5
    backend: str = "auto"
    dtype: str = "mixed"
    pls_components: int = 25
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    permutations: PermutationSettings = field(default_factory=PermutationSettings)


@dataclass(frozen=True)
class CeilingSettings(Settings):
    """The split-half noise ceiling of the image datasets (:mod:`neurofit.encoding.ceiling`)."""

    SCHEMA_KEY = "encoding.ceiling"
    n_splits: int = 10
    seed: int = 1


@dataclass(frozen=True)
class TrialEncodingSettings(Settings):
    """The time-resolved ridge of a trial dataset (:func:`neurofit.encoding.timecourse.score_region`)."""

    SCHEMA_KEY = "trials.encoding"
    ELSEWHERE = frozenset({"ceiling"})  # the trial responses job's (neural.settings.TrialCeilingSettings)
    min_exp: float = -2
    max_exp: float = 6
    n_alphas: int = 17
    n_folds: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    n_null: int = 5
    normalisation: str = "r/c"
    shape_alpha: tuple[float, ...] = ()

    def alphas(self) -> np.ndarray:
        return AlphaGrid(self.min_exp, self.max_exp, self.n_alphas).values()
