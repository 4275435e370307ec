"""Settings of the neural stages that are not a response spec (``ResponseSpec`` and ``TrialSpec`` are)."""

from __future__ import annotations

from dataclasses import dataclass

from neurofit.settings import Settings


@dataclass(frozen=True)
class TrialCeilingSettings(Settings):
    """The split-half ceiling over trials per condition, computed with a trial dataset's PSTHs
    (:func:`neurofit.neural.trials.build_trial_dataset`)."""

    SCHEMA_KEY = "trials.encoding.ceiling"
    n_splits: int = 10
    seed: int = 0
