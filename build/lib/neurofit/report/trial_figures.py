"""Figures of time-resolved datasets: neural vs model trajectories on top PCs, and predictivity over time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.report.figures import OKABE_ITO, _save, plt

HEADLINE = "psth_ridge"
NULL = "psth_ridge_shuffled_time"


def top_pcs(values: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``(condition, time, unit)`` -> its projection on the top ``n`` PCs over condition x time, and their share of
    the variance (units z-scored so that a few high-rate units do not dominate)."""
    flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
    flat = flat - flat.mean(0)
    sd = flat.std(0)
    flat = flat / np.where(sd > 0, sd, 1)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    n = min(n, vt.shape[0])
    explained = s[:n] ** 2 / max((s ** 2).sum(), 1e-12)
    return (flat @ vt[:n].T).reshape(values.shape[0], values.shape[1], n), explained


def best_layers(table: pd.DataFrame, dataset: str) -> dict[tuple[str, str], str]:
    """(model, region) -> the layer with the highest headline score."""
    rows = table[(table["dataset"] == dataset) & (table["metric"] == HEADLINE)]
    best = rows.loc[rows.groupby(["model", "region"])["score"].idxmax()]
    return {(m, r): layer for m, r, layer in zip(best["model"], best["region"], best["layer"], strict=True)}


def _trajectory_panel(ax: plt.Axes, values: np.ndarray, conditions: list[str], time: np.ndarray, title: str) -> None:
    pcs, explained = top_pcs(values)
    zero = int(np.argmin(np.abs(time)))
    for i, condition in enumerate(conditions):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(pcs[i, :, 0], pcs[i, :, 1] if pcs.shape[2] > 1 else time, color=colour, lw=1.2, label=condition)
        ax.plot(pcs[i, 0, 0], pcs[i, 0, 1] if pcs.shape[2] > 1 else time[0], "o", color=colour, ms=3, mfc="white")
        ax.plot(pcs[i, zero, 0], pcs[i, zero, 1] if pcs.shape[2] > 1 else 0, "s", color=colour, ms=4)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} var., a.u.)", fontsize=7)
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} var., a.u.)" if len(explained) > 1 else "time (s)", fontsize=7)
    ax.tick_params(labelsize=6)


def plot_trajectories(psth_path: str, features: dict[str, str], table_path: str, dataset: str,
                      out: str) -> None:
    """Rows: regions; columns: the neural population, then each model's best layer for that region. Each condition
    is one line over time on the top two PCs (circle: window start; square: the alignment event)."""
    data = xr.load_dataset(psth_path, engine="h5netcdf")
    table = pd.read_csv(table_path)
    best = best_layers(table, dataset)
    regions = list(dict.fromkeys(str(r) for r in data["region"].values))
    conditions = [str(c) for c in data["condition"].values]
    time = data["time"].values
    models = list(features)
    fig, axes = plt.subplots(len(regions), 1 + len(models), figsize=(1.9 * (1 + len(models)), 1.9 * len(regions)),
                             squeeze=False, constrained_layout=True)
    for row, region in enumerate(regions):
        keep = data["region"].values == region
        _trajectory_panel(axes[row, 0], data["psth"].values[:, :, keep], conditions, time,
                          f"{region}: neural (n={int(keep.sum())})")
        for col, model in enumerate(models, start=1):
            layer = best.get((model, region))
            model_features = xr.load_dataset(features[model], engine="h5netcdf")
            if layer is None or layer not in model_features:
                axes[row, col].text(0.5, 0.5, "no fit", ha="center", va="center", transform=axes[row, col].transAxes)
                continue
            values = model_features[layer].sel(condition=conditions).values
            _trajectory_panel(axes[row, col], values, conditions, time, f"{model}: {layer}")
    axes[0, 0].legend(fontsize=6, frameon=False)
    _save(fig, [out, str(Path(out).with_suffix(".svg"))])


def plot_predictivity_over_time(time_curves: dict[str, str], table_path: str, psth_path: str, dataset: str,
                                out: str) -> None:
    """Per region: r over time (condition x neuroid at each bin) of each model's best layer, and the shuffled-time
    null (dashed); dotted lines mark the task events."""
    table = pd.read_csv(table_path)
    best = best_layers(table, dataset)
    data = xr.open_dataset(psth_path, engine="h5netcdf")
    epochs = json.loads(data.attrs["epochs"])
    data.close()
    regions = list(dict.fromkeys(r for _, r in best))
    fig, axes = plt.subplots(1, max(len(regions), 1), figsize=(3.2 * max(len(regions), 1), 2.4), squeeze=False,
                             constrained_layout=True)
    for col, region in enumerate(regions):
        ax = axes[0, col]
        for i, (model, path) in enumerate(time_curves.items()):
            layer = best.get((model, region))
            if layer is None:
                continue
            curves = xr.load_dataarray(path, engine="h5netcdf")
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            real = curves.sel(layer=layer, region=region, metric=HEADLINE)
            ax.plot(real["time"], real, color=colour, lw=1.2, label=f"{model} ({layer})")
            null = curves.sel(layer=layer, region=region, metric=NULL)
            ax.plot(null["time"], null, color=colour, lw=0.8, ls="--")
        for name, t in epochs.items():
            ax.axvline(t, color="0.6", lw=0.6, ls=":")
            ax.text(t, 1.0, name.replace("_time", ""), fontsize=5, rotation=90, va="top", ha="right",
                    transform=ax.get_xaxis_transform())
        ax.axhline(0, color="0.8", lw=0.6)
        ax.set_title(f"{dataset}: {region}", fontsize=8)
        ax.set_xlabel("time from alignment event (s)", fontsize=7)
        ax.set_ylabel("held-out r over conditions x neuroids", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=5, frameon=False, title="dashed: shuffled-time null", title_fontsize=5)
    _save(fig, [out, str(Path(out).with_suffix(".svg"))])
