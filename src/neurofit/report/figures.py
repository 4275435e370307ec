"""Figures a paper can use: colour-blind-safe palette, labelled axes, PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _save(fig: plt.Figure, paths: list[str | Path]) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=200, bbox_inches="tight")
    plt.close(fig)


def layer_region_heatmap(table: pd.DataFrame, model: str, layer_order: list[str], region_order: list[str],
                         paths: list[str | Path]) -> None:
    """Ceiling-normalised predictivity of each layer (rows) for each region (columns)."""
    sub = table[table["model"] == model]
    grid = sub.pivot_table(index="layer", columns="region", values="score").reindex(index=layer_order,
                                                                                     columns=region_order)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(region_order), 0.8 + 0.45 * len(layer_order)))
    image = ax.imshow(grid.values, cmap="viridis", aspect="auto", vmin=0, vmax=max(1.0, np.nanmax(grid.values)))
    for (i, j), value in np.ndenumerate(grid.values):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value < 0.6 * image.get_clim()[1] else "black")
    ax.set_xticks(range(len(region_order)), region_order)
    ax.set_yticks(range(len(layer_order)), layer_order)
    ax.set_xlabel("brain region")
    ax.set_ylabel("model layer")
    normalisation = sub["normalisation"].iloc[0] if len(sub) else ""
    metric = sub["metric"].iloc[0] if len(sub) else ""
    ax.set_title(f"{model}: {metric} predictivity ({normalisation})", fontsize=9)
    fig.colorbar(image, ax=ax, label=f"ceiling-normalised score ({normalisation})")
    _save(fig, paths)


def best_layer_figure(table: pd.DataFrame, layer_orders: dict[str, list[str]], region_order: list[str],
                      paths: list[str | Path]) -> None:
    """Best layer per region (by score, layer depth as a fraction of the network) for each model,
    against the region hierarchy."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for colour, (model, sub) in zip(OKABE_ITO * 4, table.groupby("model", sort=True), strict=False):
        order = layer_orders[model]
        depth = []
        for region in region_order:
            rows = sub[sub["region"] == region]
            best = rows.loc[rows["score"].idxmax(), "layer"] if len(rows) else None
            depth.append(order.index(best) / max(len(order) - 1, 1) if best in order else np.nan)
        ax.plot(range(len(region_order)), depth, marker="o", color=colour, label=model)
    ax.set_xticks(range(len(region_order)), region_order)
    ax.set_xlabel("brain region (ventral-stream order)")
    ax.set_ylabel("relative depth of best layer (0 = first, 1 = last)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(frameon=False, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, paths)
