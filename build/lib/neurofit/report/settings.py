"""What the tables and figures take from the config: how scores are normalised and their CIs made."""

from __future__ import annotations

from dataclasses import dataclass

from neurofit.settings import Settings


@dataclass(frozen=True)
class ReportSettings(Settings):
    """``encoding.normalisation`` and ``encoding.ci`` (:mod:`neurofit.report.tables`)."""

    SCHEMA_KEY = "encoding"
    ELSEWHERE = frozenset({"metrics", "splits", "alphas", "inner_folds", "backend", "dtype", "pls_components",
                           "bootstrap", "permutations", "ceiling"})  # the fit's and the ceiling's
    normalisation: str = "r^2/c"
    ci: str = "bootstrap_both"
