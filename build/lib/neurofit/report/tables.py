"""Tidy predictivity tables: one row per dataset x model x layer x region x metric.

The first columns are fixed (``COLUMNS``, read by the figures and the report); after them come
``EXTRA``: ``sem`` (standard error of the mean over splits of the raw score), ``ci_method`` (how
``ci_low``/``ci_high`` were made), ``p_value`` (permutation test of the raw score against shuffled
stimulus labels), ``n_splits``, and what the fit read: ``features_form`` (``matrix``, or ``gram`` when
only the Gram matrix was kept) and ``reduce`` (the features stage's reduction, ``none`` without one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.encoding.fit import normalise
from neurofit.report.columns import NORMALISATION_LABELS

COLUMNS = ["dataset", "model", "layer", "region", "metric", "raw", "ceiling", "score", "normalisation",
           "ci_low", "ci_high", "n_neuroids", "n_stimuli"]
EXTRA = ["sem", "ci_method", "p_value", "n_splits", "features_form", "reduce"]
CI_METHODS = ("bootstrap_both", "bootstrap_stimuli", "bootstrap_neuroids", "sem")
RESAMPLE_NAMES = ("boot_both", "boot_stimuli", "boot_neuroids")
CI_LEVEL = 0.95

Ceilings = dict[str, dict[str, dict[str, float]]]  # dataset -> metric -> region -> ceiling
# A fit artefact: its path, or the artefact already read (load_fits), for stages that build several tables.
FitSource = str | Path | xr.Dataset
Fits = Iterable[tuple[dict[str, str], FitSource]]  # each fit keyed by its (dataset, model, layer, region) names


@contextmanager
def _opened(source: FitSource) -> Iterator[xr.Dataset]:
    if isinstance(source, xr.Dataset):
        yield source
        return
    with xr.open_dataset(source, engine="h5netcdf") as fit:
        yield fit


def load_fits(fits: Fits) -> list[tuple[dict[str, str], xr.Dataset]]:
    """Every fit artefact read into memory once, so that the tables of one stage share them: opening one
    costs ~30 ms (xarray's decoding of its variables), more than any table does with it."""
    loaded = []
    for key, source in fits:
        with _opened(source) as fit:
            loaded.append((key, fit.load()))
    return loaded


def ceiling_by_region(ceilings: xr.Dataset) -> dict[str, dict[str, float]]:
    """``{metric: {region: ceiling}}``. For ridge, PLS and the factorised readout: median over a region's neuroids per
    split, mean over splits (Brain-Score's aggregation); for RSA and CKA: the mean over splits of
    the region's split-half consistency."""
    per_neuroid = {}
    for region in np.unique(ceilings["region"].values):
        per_split = ceilings["reliability"].sel(neuroid=ceilings["region"].values == region)
        per_neuroid[str(region)] = float(np.nanmedian(per_split.values, axis=1).mean())
    out = {"ridge": per_neuroid, "pls": dict(per_neuroid), "factorised": dict(per_neuroid)}
    for metric in ("rsa", "cka"):
        name = f"{metric}_reliability"
        if name in ceilings:
            out[metric] = {str(r): float(np.nanmean(ceilings[name].sel(region_name=r).values))
                           for r in ceilings["region_name"].values}
    return out


def _ceiling(ceilings: Ceilings, dataset: str, metric: str, region: str) -> float:
    try:
        return ceilings[dataset][metric][region]
    except KeyError as missing:
        raise KeyError(f"no {metric} ceiling for dataset {dataset!r}, region {region!r} ({missing} missing)") from None


def summarise(per_split: np.ndarray, boot: np.ndarray | None, null: np.ndarray | None, ceiling: float,
              normalisation: str, ci_method: str = "bootstrap_both") -> dict[str, object]:
    """Mean over splits of the per-split scores and its normalised value; the CI from the
    bootstrap draws ``boot`` (draw, split) by percentile (each draw normalised first), or mean +- 1.96
    SEM over splits with ``ci_method="sem"``; the permutation p-value from ``null`` (permutation, split).
    Every normalisation keeps the sign of r (:func:`~neurofit.encoding.fit.normalise`), so it is monotone
    and the bounds of a CI map to the bounds of the normalised CI."""
    raw = float(per_split.mean())
    sem = float(per_split.std(ddof=1) / np.sqrt(len(per_split))) if len(per_split) > 1 else float("nan")
    if ci_method == "sem":
        low, high = raw - 1.96 * sem, raw + 1.96 * sem
        ci = (normalise(low, ceiling, normalisation), normalise(high, ceiling, normalisation))
        method = "sem: mean +- 1.96 SEM over splits"
    elif ci_method in CI_METHODS:
        if boot is None:
            raise ValueError(f"ci method {ci_method!r} needs bootstrap draws in the fit artefact")
        draws = np.asarray(normalise(boot.mean(1), ceiling, normalisation), dtype=float)
        tail = (1 - CI_LEVEL) / 2 * 100
        # nan: a draw too small for its metric (debiased CKA needs 4 distinct stimuli)
        ci = (float(np.nanpercentile(draws, tail)), float(np.nanpercentile(draws, 100 - tail)))
        method = f"{ci_method}: {CI_LEVEL:.0%} percentile of {boot.shape[0]} draws"
    else:
        raise ValueError(f"unknown ci method {ci_method!r}; known: {list(CI_METHODS)}")
    p_value = float("nan")
    if null is not None:
        null_mean = null.mean(1)
        p_value = float((1 + (null_mean >= raw).sum()) / (1 + len(null_mean)))
    return {"raw": raw, "ceiling": ceiling, "score": normalise(raw, ceiling, normalisation),
            "normalisation": NORMALISATION_LABELS[normalisation], "ci_low": ci[0], "ci_high": ci[1], "sem": sem,
            "ci_method": method, "p_value": p_value, "n_splits": len(per_split)}


def _boot_name(ci_method: str) -> str:
    return ci_method.replace("bootstrap_", "boot_") if ci_method != "sem" else "boot_both"


def _draws(fit: xr.Dataset, name: str) -> np.ndarray | None:
    return fit[name].transpose(..., "split").values if name in fit else None


def _features_columns(attrs: dict[str, Any]) -> dict[str, str]:
    return {"features_form": str(attrs.get("features_form", "matrix")), "reduce": str(attrs.get("reduce", "none"))}


def fit_row(fit: xr.Dataset, dataset: str, model: str, layer: str, region: str, ceiling: float,
            normalisation: str, ci_method: str = "bootstrap_both") -> dict[str, object]:
    return {"dataset": dataset, "model": model, "layer": layer, "region": region, "metric": str(fit.attrs["metric"]),
            **summarise(fit["test_score"].values, _draws(fit, _boot_name(ci_method)), _draws(fit, "null"), ceiling,
                        normalisation, ci_method),
            "n_neuroids": int(fit.attrs["n_neuroids"]), "n_stimuli": int(fit.attrs["n_stimuli"]),
            **_features_columns(fit.attrs)}


def predictivity_table(fits: Fits, ceilings: Ceilings, normalisation: str,
                       ci_method: str = "bootstrap_both") -> pd.DataFrame:
    """All-layers table from fit artefacts keyed by their (dataset, model, layer, region) names."""
    rows = []
    for key, source in fits:
        with _opened(source) as fit:
            metric = str(fit.attrs["metric"])
            rows.append(fit_row(fit, key["dataset"], key["model"], key["layer"], key["region"],
                                _ceiling(ceilings, key["dataset"], metric, key["region"]), normalisation, ci_method))
    return pd.DataFrame(rows, columns=COLUMNS + EXTRA)


def choose_layers(train_score: np.ndarray) -> np.ndarray:
    """Per split, the index of the layer with the best *training* score: (layer, split) -> (split,)."""
    return np.asarray(train_score).argmax(0)


@dataclass
class ChosenLayer:
    """One model's fits of one region at the layer chosen per split on training stimuli: per split the
    chosen layer's test score, its resample draws (draw, split) and, for per-neuroid metrics, its
    held-out r (split, neuroid)."""

    layer: str  # the most frequent choice
    choices: list[str]
    test_score: np.ndarray
    draws: dict[str, np.ndarray | None]
    test_r: np.ndarray | None
    attrs: dict[str, Any]


FitGroups = dict[tuple[str, str, str, str], list[tuple[str, xr.Dataset]]]


def load_fit_groups(fits: Fits) -> FitGroups:
    """The fit artefacts grouped by (dataset, model, region, metric), each a list of (layer, fit)."""
    groups: FitGroups = {}
    for key, fit in load_fits(fits):
        group = (key["dataset"], key["model"], key["region"], str(fit.attrs["metric"]))
        groups.setdefault(group, []).append((key["layer"], fit))
    return groups


def choose_layer(layers: list[tuple[str, xr.Dataset]]) -> ChosenLayer:
    """In each outer split the layer with the best score on that split's training stimuli; the test
    scores never enter the choice."""
    choice = choose_layers(np.stack([fit["train_score"].values for _, fit in layers]))
    splits = np.arange(len(choice))
    draws: dict[str, np.ndarray | None] = {}
    for name in (*RESAMPLE_NAMES, "null"):
        stacked = [_draws(fit, name) for _, fit in layers]
        draws[name] = None if any(s is None for s in stacked) else np.stack(stacked)[choice, :, splits].T
    test_r = None
    if all("test_r" in fit for _, fit in layers):
        test_r = np.stack([fit["test_r"].transpose("split", "neuroid").values for _, fit in layers])[choice, splits]
    names = [name for name, _ in layers]
    return ChosenLayer(layer=names[int(np.bincount(choice, minlength=len(names)).argmax())],
                       choices=[names[i] for i in choice],
                       test_score=np.stack([fit["test_score"].values for _, fit in layers])[choice, splits],
                       draws=draws, test_r=test_r, attrs=dict(layers[0][1].attrs))


def best_layer_table(fits: Fits, ceilings: Ceilings, normalisation: str,
                     ci_method: str = "bootstrap_both") -> pd.DataFrame:
    """Layer chosen per region on training stimuli only (:func:`choose_layer`), scored on the test
    stimuli. ``layer`` is the most frequent choice, ``layer_choices`` all of them."""
    rows = []
    for (dataset, model, region, metric), layers in load_fit_groups(fits).items():
        chosen = choose_layer(layers)
        rows.append({
            "dataset": dataset, "model": model, "layer": chosen.layer, "region": region, "metric": metric,
            **summarise(chosen.test_score, chosen.draws[_boot_name(ci_method)], chosen.draws["null"],
                        _ceiling(ceilings, dataset, metric, region), normalisation, ci_method),
            "n_neuroids": int(chosen.attrs["n_neuroids"]), "n_stimuli": int(chosen.attrs["n_stimuli"]),
            **_features_columns(chosen.attrs), "layer_choices": ",".join(chosen.choices),
        })
    return pd.DataFrame(rows, columns=[*COLUMNS, *EXTRA, "layer_choices"])


def write_table(table: pd.DataFrame, csv_path: str | Path, parquet_path: str | Path | None = None) -> None:
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv_path, index=False)
    if parquet_path:
        table.to_parquet(parquet_path, index=False)
