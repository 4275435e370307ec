"""Which model explains a region better? Paired comparisons of every two models per region.

Both models are taken at the layer chosen on training stimuli (:func:`~neurofit.report.tables.choose_layer`)
and compared on the same draws: every fit of a region draws its bootstrap resamples of test stimuli and
neuroids with the same seed per split (``encoding/fit.py``), so draw ``i`` of model A and draw ``i`` of
model B resample the same stimuli and neuroids, and their difference is a paired bootstrap draw of the
difference of scores. The CI is its percentile interval; the p-value is two-sided:

- per-neuroid metrics (ridge, PLS; fits with ``test_r``): a paired permutation test over neuroids: each
  neuroid's held-out r (every split) of A and B swapped with probability 1/2, the statistic the same
  difference of scores (median over neuroids per split, mean over splits); every swap pattern when there
  are at most ``n_permutations`` of them, else ``n_permutations`` random ones;
- population metrics (RSA, CKA): from the paired bootstrap draws (twice the share of draws on the
  other side of 0).

p-values are Holm-adjusted over the pairs of a (dataset, region, metric). ``significant`` means
``p_holm < ALPHA`` *and* a CI that excludes 0: the permutation test holds the test stimuli fixed (it swaps
neuroids only) while the CI also resamples stimuli, so a difference carried by a few stimuli can pass the
one and not the other; a difference is marked only when both agree.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from neurofit.encoding.fit import median_rows, normalise
from neurofit.report.columns import NORMALISATION_LABELS
from neurofit.report.tables import (
    CI_LEVEL,
    Ceilings,
    ChosenLayer,
    Fits,
    _boot_name,
    _ceiling,
    choose_layer,
    load_fit_groups,
)

ALPHA = 0.05
COMPARISON_COLUMNS = ["dataset", "region", "metric", "model_a", "model_b", "layer_a", "layer_b", "score_a", "score_b",
                      "difference", "ci_low", "ci_high", "p_value", "p_holm", "significant", "test", "normalisation",
                      "ci_method", "n_neuroids", "n_stimuli", "n_splits", "n_boot", "n_permutations"]
# Settings that must agree for two fits' resamples to be the same draws.
PAIRED_ATTRS = ("preset", "n_splits", "train_size", "seed", "stratify_coord", "n_stimuli", "n_neuroids", "n_boot",
                "resample_seed")


def check_paired(a: ChosenLayer, b: ChosenLayer, names: tuple[str, str]) -> None:
    """Refuse two fits whose splits or resamples differ (they could not be compared draw by draw)."""
    differ = [k for k in PAIRED_ATTRS if str(a.attrs.get(k)) != str(b.attrs.get(k))]
    if differ:
        detail = ", ".join(f"{k}: {a.attrs.get(k)} vs {b.attrs.get(k)}" for k in differ)
        raise ValueError(f"models {names[0]!r} and {names[1]!r} were fitted with different splits or resamples "
                         f"({detail}); refit both with the same encoding settings to compare them")


def sign_flip_p_value(r_a: np.ndarray, r_b: np.ndarray, n_permutations: int, seed: int = 0) -> tuple[float, int]:
    """Two-sided p-value of the difference of median-over-neuroid scores (mean over splits) of two models'
    held-out r (split, neuroid), under the null that each neuroid's pair of scores is exchangeable.
    Returns the p-value and the number of swap patterns used."""
    n = r_a.shape[1]

    def statistic(flips: np.ndarray) -> np.ndarray:  # (perm, neuroid) bool -> (perm,)
        a = np.where(flips[:, None, :], r_b[None], r_a[None]).reshape(-1, n)
        b = np.where(flips[:, None, :], r_a[None], r_b[None]).reshape(-1, n)
        return (median_rows(a) - median_rows(b)).reshape(len(flips), -1).mean(1)

    observed = abs(float((np.median(r_a, 1) - np.median(r_b, 1)).mean()))
    tolerance = 1e-12 * max(1.0, observed)  # a swap pattern equal to the observed one counts as extreme
    if n <= 20 and 2**n <= n_permutations:  # every pattern: the exact test
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)
        extreme = sum(int((np.abs(statistic(chunk)) >= observed - tolerance).sum())
                      for chunk in np.array_split(patterns, max(1, len(patterns) // 256)))
        return extreme / len(patterns), len(patterns)
    rng = np.random.default_rng(seed)
    extreme, step = 0, max(1, (1 << 22) // max(r_a.size, 1))
    for start in range(0, n_permutations, step):
        flips = rng.random((min(step, n_permutations - start), n)) < 0.5
        extreme += int((np.abs(statistic(flips)) >= observed - tolerance).sum())
    return (1 + extreme) / (1 + n_permutations), n_permutations


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value from paired bootstrap draws of a difference: twice the smaller share of draws at
    or beyond 0 on either side (with the +1 of a resampling p-value), at most 1."""
    d = differences[np.isfinite(differences)]
    tail = min((d <= 0).sum(), (d >= 0).sum())
    return float(min(1.0, 2 * (1 + tail) / (1 + len(d))))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error) of a family of p-values."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def compare(a: ChosenLayer, b: ChosenLayer, ceiling: float, normalisation: str, ci_method: str = "bootstrap_both",
            names: tuple[str, str] = ("a", "b")) -> dict[str, object]:
    """Difference of normalised scores A - B with its paired bootstrap CI and a two-sided p-value."""
    check_paired(a, b, names)
    boot = _boot_name(ci_method)
    draws_a, draws_b = a.draws[boot], b.draws[boot]
    if draws_a is None or draws_b is None:
        raise ValueError(f"models {names[0]!r} and {names[1]!r}: the fits have no {boot!r} draws to compare on")
    score_a = float(normalise(float(a.test_score.mean()), ceiling, normalisation))
    score_b = float(normalise(float(b.test_score.mean()), ceiling, normalisation))
    differences = (np.asarray(normalise(draws_a.mean(1), ceiling, normalisation), dtype=float)
                   - np.asarray(normalise(draws_b.mean(1), ceiling, normalisation), dtype=float))
    tail = (1 - CI_LEVEL) / 2 * 100
    n_permutations = int(a.attrs.get("n_permutations", 1000))
    if a.test_r is not None and b.test_r is not None:
        p_value, n_permutations = sign_flip_p_value(a.test_r, b.test_r, n_permutations,
                                                    int(a.attrs.get("resample_seed", 0)))
        test = "permutation: neuroids' scores swapped between the models"
    else:
        p_value, n_permutations = bootstrap_p_value(differences), 0
        test = "paired bootstrap"
    return {"layer_a": a.layer, "layer_b": b.layer, "score_a": score_a, "score_b": score_b,
            "difference": score_a - score_b,
            "ci_low": float(np.nanpercentile(differences, tail)),
            "ci_high": float(np.nanpercentile(differences, 100 - tail)),
            "p_value": p_value, "test": test, "normalisation": NORMALISATION_LABELS[normalisation],
            "ci_method": f"paired {boot}: {CI_LEVEL:.0%} percentile of {len(differences)} draws",
            "n_neuroids": int(a.attrs["n_neuroids"]), "n_stimuli": int(a.attrs["n_stimuli"]),
            "n_splits": len(a.test_score), "n_boot": len(differences), "n_permutations": n_permutations}


def comparison_table(fits: Fits, ceilings: Ceilings, normalisation: str,
                     ci_method: str = "bootstrap_both") -> pd.DataFrame:
    """Every two models of each (dataset, region, metric), in the order the fits list them, compared at
    their layers chosen on training stimuli; see the module docstring."""
    groups = load_fit_groups(fits)
    families: dict[tuple[str, str, str], dict[str, ChosenLayer]] = {}
    for (dataset, model, region, metric), layers in groups.items():
        families.setdefault((dataset, region, metric), {})[model] = choose_layer(layers)
    rows = []
    for (dataset, region, metric), chosen in families.items():
        ceiling = _ceiling(ceilings, dataset, metric, region)
        family = [{"dataset": dataset, "region": region, "metric": metric, "model_a": a, "model_b": b,
                   **compare(chosen[a], chosen[b], ceiling, normalisation, ci_method, (a, b))}
                  for a, b in combinations(chosen, 2)]
        for row, adjusted in zip(family, holm(np.array([r["p_value"] for r in family])), strict=True):
            row["p_holm"] = float(adjusted)
            row["significant"] = bool(adjusted < ALPHA and (row["ci_low"] > 0 or row["ci_high"] < 0))
        rows.extend(family)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
