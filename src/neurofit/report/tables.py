"""Tidy predictivity tables: one row per dataset x model x layer x region x metric."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.encoding.fit import normalise

COLUMNS = ["dataset", "model", "layer", "region", "metric", "raw", "ceiling", "score", "normalisation",
           "ci_low", "ci_high", "n_neuroids", "n_stimuli"]


def ceiling_by_region(ceilings: xr.Dataset) -> dict[str, float]:
    """Median over a region's neuroids per split, mean over splits (Brain-Score's aggregation)."""
    out = {}
    for region in np.unique(ceilings["region"].values):
        per_split = ceilings["reliability"].sel(neuroid=ceilings["region"].values == region)
        out[str(region)] = float(np.nanmedian(per_split.values, axis=1).mean())
    return out


def summarise(per_split: np.ndarray, ceiling: float, normalisation: str) -> dict[str, object]:
    """Mean over splits of the per-split scores, with a 95% CI from their standard error."""
    raw = float(per_split.mean())
    sem = float(per_split.std(ddof=1) / np.sqrt(len(per_split))) if len(per_split) > 1 else float("nan")
    low = raw - 1.96 * sem
    if normalisation in ("(r/c)^2", "r^2/c"):  # squaring a negative bound would flip it
        low = max(low, 0.0)
    return {"raw": raw, "ceiling": ceiling, "score": normalise(raw, ceiling, normalisation),
            "normalisation": normalisation, "ci_low": normalise(low, ceiling, normalisation),
            "ci_high": normalise(raw + 1.96 * sem, ceiling, normalisation)}


def fit_row(fit: xr.Dataset, dataset: str, model: str, layer: str, region: str, ceiling: float,
            normalisation: str) -> dict[str, object]:
    per_split = np.median(fit["test_r"].values, axis=1)
    return {"dataset": dataset, "model": model, "layer": layer, "region": region, "metric": str(fit.attrs["metric"]),
            **summarise(per_split, ceiling, normalisation),
            "n_neuroids": int(fit.sizes["neuroid"]), "n_stimuli": int(fit.attrs["n_stimuli"])}


def predictivity_table(fits: Iterable[tuple[dict[str, str], str | Path]], ceilings: dict[str, dict[str, float]],
                       normalisation: str) -> pd.DataFrame:
    """All-layers table from fit artefacts keyed by their (dataset, model, layer, region) names."""
    rows = []
    for key, path in fits:
        with xr.open_dataset(path, engine="h5netcdf") as fit:
            rows.append(fit_row(fit, key["dataset"], key["model"], key["layer"], key["region"],
                                ceilings[key["dataset"]][key["region"]], normalisation))
    return pd.DataFrame(rows, columns=COLUMNS)


def best_layer_table(fits: Iterable[tuple[dict[str, str], str | Path]], ceilings: dict[str, dict[str, float]],
                     normalisation: str) -> pd.DataFrame:
    """Layer chosen per region on training stimuli only: in each outer split the layer with the
    best inner-CV score on that split's training stimuli, scored on its test stimuli."""
    groups: dict[tuple[str, str, str, str], list[tuple[str, xr.Dataset]]] = {}
    for key, path in fits:
        with xr.open_dataset(path, engine="h5netcdf") as fit:
            group = (key["dataset"], key["model"], key["region"], str(fit.attrs["metric"]))
            groups.setdefault(group, []).append((key["layer"], fit.load()))
    rows = []
    for (dataset, model, region, metric), layers in groups.items():
        train = np.stack([fit["train_score"].values for _, fit in layers])  # (layer, split)
        test = np.stack([np.median(fit["test_r"].values, axis=1) for _, fit in layers])
        choice = train.argmax(0)
        per_split = test[choice, np.arange(test.shape[1])]
        names = [name for name, _ in layers]
        modal = names[int(np.bincount(choice, minlength=len(names)).argmax())]
        rows.append({
            "dataset": dataset, "model": model, "layer": modal, "region": region, "metric": metric,
            **summarise(per_split, ceilings[dataset][region], normalisation),
            "n_neuroids": int(layers[0][1].sizes["neuroid"]), "n_stimuli": int(layers[0][1].attrs["n_stimuli"]),
            "layer_choices": ",".join(names[i] for i in choice),
        })
    return pd.DataFrame(rows, columns=[*COLUMNS, "layer_choices"])


def write_table(table: pd.DataFrame, csv_path: str | Path, parquet_path: str | Path | None = None) -> None:
    Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv_path, index=False)
    if parquet_path:
        table.to_parquet(parquet_path, index=False)
