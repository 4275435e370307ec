"""What some columns of the CSV tables mean to the code that reads them back (figures, pages): the
``normalisation`` labels and the significant rows of the comparisons table. Kept apart from building
the tables (:mod:`neurofit.report.tables`, which imports xarray and the encoding code) so that a figure
job, which reads only CSV tables, imports neither (0.3 s of such a job)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The ``normalisation`` column names the formula, sign convention included (config name -> column).
NORMALISATION_LABELS = {"r/c": "r/c", "(r/c)^2": "sign(r)*(r/c)^2", "r^2/c": "sign(r)*r^2/c", "none": "none"}


def normalisation_method(name: str) -> str:
    """The config's normalisation (``r^2/c``) of a table's ``normalisation`` column (``sign(r)*r^2/c``)."""
    for method, label in NORMALISATION_LABELS.items():
        if name in (method, label):
            return method
    raise ValueError(f"unknown normalisation {name!r}; known: {list(NORMALISATION_LABELS.values())}")


def significant_pairs(comparisons: pd.DataFrame, region: str) -> pd.DataFrame:
    """The significant rows of one region of the comparisons table, each oriented so that ``better``
    explains it better."""
    rows = comparisons[(comparisons["region"] == region) & comparisons["significant"].astype(bool)]
    better = np.where(rows["difference"] > 0, rows["model_a"], rows["model_b"])
    worse = np.where(rows["difference"] > 0, rows["model_b"], rows["model_a"])
    return pd.DataFrame({"better": better, "worse": worse, "p_holm": rows["p_holm"].to_numpy()})
