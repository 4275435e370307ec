"""Figures a paper can use: Okabe-Ito palette, labelled axes with units, n and CIs drawn, the noise
ceiling drawn, PNG and SVG at journal column widths.

Every figure is drawn whatever the config holds: where its inputs cannot support it (fewer than three
models with a task performance for a correlation, no trained models for a learning-rule comparison) the
figure says so on its face instead of disappearing, so a report always has the same figure set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
CEILING_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.0}
# Widths in inches: one and two journal columns (89 mm and 183 mm).
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.2
MIN_MODELS_FOR_CORRELATION = 3
# Objectives that are not a network trained by a learning rule.
NOT_TRAINED = ("untrained", "reference")

plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                     "xtick.labelsize": 7, "ytick.labelsize": 7, "svg.fonttype": "none"})


def style(index: int) -> dict[str, str]:
    """Colour and marker of the index-th series: colour cycles first, markers keep >8 series apart."""
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "marker": MARKERS[(index // len(OKABE_ITO)) % len(MARKERS)]}


def _save(fig: plt.Figure, paths: Sequence[str | Path]) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=300, bbox_inches="tight")
    plt.close(fig)


def _note(ax: plt.Axes, text: str, empty: bool = False) -> None:
    """A message drawn on the axes where the data cannot support the figure: at the top, over the data
    drawn, or in the middle of an axes left empty (``empty``)."""
    if empty:
        ax.set_axis_off()
    ax.text(0.5, 0.5 if empty else 0.97, text, transform=ax.transAxes, ha="center", va="center" if empty else "top",
            fontsize=7, color="#D55E00", bbox={"facecolor": "white", "edgecolor": "#D55E00", "boxstyle": "round"})


def score_label(normalisation: str) -> str:
    if normalisation == "none":
        return "predictivity\n(median held-out Pearson r)"
    return f"ceiling-normalised predictivity\n({normalisation}; 1 = noise ceiling)"


def ceiling_as_r(reliability: np.ndarray, normalisation: str) -> np.ndarray:
    """A neuroid's noise ceiling in units of its Pearson r: under r^2/c the ceiling bounds r^2, so r is
    bounded by its square root; the other conventions divide r by the reliability itself."""
    reliability = np.asarray(reliability, dtype=float)
    if normalisation == "r^2/c":
        return np.sqrt(np.where(reliability >= 0, reliability, np.nan))
    return reliability


def ceiling_level(normalisation: str, ceiling: float) -> float:
    """Where the noise ceiling lies on the score axis: 1 once normalised, the raw ceiling otherwise."""
    return float(ceiling) if normalisation == "none" else 1.0


def _normalisation(table: pd.DataFrame) -> str:
    return str(table["normalisation"].iloc[0]) if len(table) else "none"


def _ci_errors(rows: pd.DataFrame) -> np.ndarray:
    """(2, n) distances from the score to its CI bounds, for ``errorbar(yerr=...)``."""
    low = (rows["score"] - rows["ci_low"]).clip(lower=0).fillna(0).to_numpy()
    high = (rows["ci_high"] - rows["score"]).clip(lower=0).fillna(0).to_numpy()
    return np.vstack([low, high])


# -- 1. layer x region heatmap -------------------------------------------------------------------
def layer_region_heatmap(table: pd.DataFrame, model: str, layer_order: list[str], region_order: list[str],
                         paths: Sequence[str | Path]) -> None:
    """Ceiling-normalised predictivity of each layer (rows) for each region (columns), each cell with
    its 95% CI; the colour scale tops out at the ceiling (1) unless a score exceeds it."""
    sub = table[table["model"] == model]
    normalisation = _normalisation(sub)

    def grid(column: str) -> np.ndarray:
        return sub.pivot_table(index="layer", columns="region", values=column).reindex(
            index=layer_order, columns=region_order).to_numpy(dtype=float)

    score, low, high = grid("score"), grid("ci_low"), grid("ci_high")
    n_neuroids = sub.groupby("region")["n_neuroids"].max().reindex(region_order)
    fig, ax = plt.subplots(figsize=(min(DOUBLE_COLUMN, 1.4 + 0.85 * len(region_order)),
                                    0.9 + 0.42 * len(layer_order)))
    top = max(1.0, float(np.nanmax(score))) if np.isfinite(score).any() else 1.0
    image = ax.imshow(score, cmap="viridis", aspect="auto", vmin=0, vmax=top)
    for (i, j), value in np.ndenumerate(score):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}\n[{low[i, j]:.2f}, {high[i, j]:.2f}]", ha="center", va="center",
                    fontsize=5.5, color="white" if value < 0.6 * top else "black")
    ax.set_xticks(range(len(region_order)),
                  [f"{r}\nn={int(n)}" if np.isfinite(n) else r for r, n in zip(region_order, n_neuroids,
                                                                                strict=True)])
    ax.set_yticks(range(len(layer_order)), layer_order)
    ax.set_xlabel("brain region (n = neuroids)")
    ax.set_ylabel("model layer (input to output)")
    metric = sub["metric"].iloc[0] if len(sub) else ""
    n_stimuli = int(sub["n_stimuli"].max()) if len(sub) else 0
    ax.set_title(f"{model}: {metric}, {n_stimuli} stimuli; cell: score [95% CI]")
    bar = fig.colorbar(image, ax=ax, label=score_label(normalisation))
    if normalisation != "none":
        bar.ax.axhline(1.0, **CEILING_STYLE)
    _save(fig, paths)


# -- 2. best layer per region against the hierarchy ----------------------------------------------
def relative_depth(layer: str, order: list[str]) -> float:
    return order.index(layer) / max(len(order) - 1, 1) if layer in order else np.nan


def best_layer_figure(best: pd.DataFrame, layer_orders: Mapping[str, list[str]], region_order: list[str],
                      paths: Sequence[str | Path]) -> None:
    """Relative depth of the layer chosen per region (on training stimuli only, ``best_layer`` table)
    for each model, regions in hierarchy order; the bar spans the choices of the individual splits."""
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN + 1.0, 2.8))
    n_models = best["model"].nunique()
    # Models side by side within a region, so equal choices do not hide each other.
    offsets = np.linspace(-0.15, 0.15, n_models) if n_models > 1 else np.zeros(1)
    n_splits = 0
    for index, (model, sub) in enumerate(best.groupby("model", sort=True)):
        order = list(layer_orders[model])
        depth = np.full(len(region_order), np.nan)
        spread = np.zeros((2, len(region_order)))
        for j, region in enumerate(region_order):
            rows = sub[sub["region"] == region]
            if not len(rows):
                continue
            choices = [relative_depth(c, order) for c in str(rows["layer_choices"].iloc[0]).split(",")]
            n_splits = max(n_splits, len(choices))
            depth[j] = relative_depth(str(rows["layer"].iloc[0]), order)
            spread[:, j] = depth[j] - np.nanmin(choices), np.nanmax(choices) - depth[j]
        x = np.arange(len(region_order)) + offsets[index]
        ax.errorbar(x, depth, yerr=spread, capsize=2, linewidth=1, label=model, **style(index))
    ax.set_xticks(range(len(region_order)), region_order)
    ax.set_xlabel("brain region (hierarchy order, early to late)")
    ax.set_ylabel("relative depth of chosen layer\n(0 = first, 1 = last)")
    ax.set_ylim(-0.08, 1.08)
    ax.set_title(f"layer chosen on training stimuli; bars: range over n = {n_splits} splits")
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    _save(fig, paths)


# -- 3. task performance vs predictivity ---------------------------------------------------------
def correlation_with_ci(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float]:
    """Pearson r of paired values with a percentile bootstrap CI, resampling the pairs (the models).

    Resamples in which either variable is constant have no r and are skipped."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_MODELS_FOR_CORRELATION or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan, np.nan
    r = float(np.corrcoef(x, y)[0, 1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xs, ys = x[idx], y[idx]
    xc, yc = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    denom = np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    valid = denom > 0
    boot = np.clip((xc * yc).sum(1)[valid] / denom[valid], -1, 1)  # rounding can leave |r| just above 1
    tail = (1 - level) / 2 * 100
    return r, float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))


def task_performance(performance: Mapping[str, Any]) -> float | None:
    """Held-out task accuracy (fraction correct): the model's headline ``performance`` (classifier
    accuracy when supervised, linear-probe accuracy otherwise), else its classifier accuracy; None
    where a model reports neither."""
    value = performance.get("performance", performance.get("heldout_accuracy"))
    return None if value is None else float(value)


def performance_vs_predictivity(best: pd.DataFrame, performance: Mapping[str, Mapping[str, Any]],
                                region_order: list[str], paths: Sequence[str | Path], n_boot: int = 2000,
                                seed: int = 0) -> pd.DataFrame:
    """Yamins et al. 2014 Fig. 2 style: one panel per region, one point per model (its held-out task
    accuracy against its predictivity at the layer chosen on training stimuli, with the 95% CI), the
    Pearson r across models with its bootstrap CI. Returns the per-region correlations drawn."""
    accuracy = {m: task_performance(p) for m, p in performance.items()}
    models = sorted(m for m, a in accuracy.items() if a is not None)
    chance = [float(p["chance"]) for m, p in performance.items() if m in models and "chance" in p]
    normalisation = _normalisation(best)
    n_panels = max(len(region_order), 1)
    fig, axes = plt.subplots(1, n_panels, figsize=(min(DOUBLE_COLUMN, 2.3 * n_panels + 1.2), 2.6), sharey=True,
                             squeeze=False)
    results = []
    for ax, region in zip(axes[0], region_order, strict=False):
        rows = best[(best["region"] == region) & best["model"].isin(models)].set_index("model")
        present = [m for m in models if m in rows.index]
        x = np.array([accuracy[m] for m in present])
        y = rows.loc[present, "score"].to_numpy(dtype=float) if present else np.array([])
        for index, model in enumerate(present):
            ax.errorbar(x[index], y[index], yerr=_ci_errors(rows.loc[[model]]), capsize=2, linestyle="none",
                        markersize=4, label=model, **style(models.index(model)))
        if present:
            ax.axhline(ceiling_level(normalisation, rows["ceiling"].iloc[0]), **CEILING_STYLE, label="noise ceiling")
        if chance:
            ax.axvline(chance[0], color="0.6", linestyle=":", linewidth=1, label="chance")
        r, low, high = correlation_with_ci(x, y, n_boot=n_boot, seed=seed)
        results.append({"region": region, "r": r, "ci_low": low, "ci_high": high, "n_models": len(present)})
        if len(present) < MIN_MODELS_FOR_CORRELATION:
            _note(ax, f"not enough models for a correlation\n(n = {len(present)} < {MIN_MODELS_FOR_CORRELATION})")
        elif np.isfinite(r):
            if len(x) >= 2 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                grid = np.linspace(x.min(), x.max(), 2)
                ax.plot(grid, slope * grid + intercept, color="0.2", linewidth=0.8)
        else:
            _note(ax, f"no correlation: task accuracy or predictivity\nis constant over the n = {len(present)} models")
        stats = f"r = {r:.2f} [{low:.2f}, {high:.2f}], " if np.isfinite(r) else ""
        ax.set_title(f"{region}: {stats}n = {len(present)} models")
        ax.set_xlabel("held-out task accuracy (fraction correct)")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel(score_label(normalisation))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("task performance vs predictivity (r with 95% bootstrap CI over models)", fontsize=8)
    fig.tight_layout()
    _save(fig, paths)
    return pd.DataFrame(results, columns=["region", "r", "ci_low", "ci_high", "n_models"])


# -- 4. per-neuroid scores against the ceiling ---------------------------------------------------
def neuroid_scores_figure(per_neuroid: Mapping[str, Mapping[str, np.ndarray]], ceilings: Mapping[str, np.ndarray],
                          layers: Mapping[str, Mapping[str, str]], region_order: list[str], normalisation: str,
                          title: str, paths: Sequence[str | Path]) -> None:
    """Distributions over neuroids, per region: held-out Pearson r of each model (at its chosen layer,
    mean over splits) beside the neuroids' noise ceilings in units of r (:func:`ceiling_as_r`), with the
    median ceiling as a dashed line.

    ``per_neuroid[region][model]`` and ``ceilings[region]`` (reliabilities) are 1-D arrays over the
    region's neuroids; ``layers[region][model]`` names the layer drawn."""
    regions = [r for r in region_order if r in ceilings]
    fig, axes = plt.subplots(1, max(len(regions), 1), figsize=(min(DOUBLE_COLUMN, 2.2 * max(len(regions), 1) + 0.6),
                                                               3.0), sharey=True, squeeze=False)
    if not regions:
        _note(axes[0, 0], "no regions with per-neuroid scores", empty=True)
    for ax, region in zip(axes[0], regions, strict=False):
        models = sorted(per_neuroid.get(region, {}))
        series = [ceiling_as_r(ceilings[region], normalisation)] + [np.asarray(per_neuroid[region][m], dtype=float)
                                                               for m in models]
        series = [s[np.isfinite(s)] for s in series]
        positions = np.arange(len(series))
        drawable = [i for i, s in enumerate(series) if len(s) > 1]
        if drawable:
            parts = ax.violinplot([series[i] for i in drawable], positions=positions[drawable], showmedians=True,
                                  widths=0.8)
            for body, i in zip(parts["bodies"], drawable, strict=True):
                body.set_facecolor("0.7" if i == 0 else OKABE_ITO[(i - 1) % len(OKABE_ITO)])
                body.set_alpha(0.6)
            for key in ("cbars", "cmins", "cmaxes", "cmedians"):
                parts[key].set_color("0.25")
                parts[key].set_linewidth(0.8)
        rng = np.random.default_rng(0)
        for i, values in enumerate(series):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=3, color="0.15", linewidths=0)
        if len(series[0]):
            ax.axhline(float(np.median(series[0])), **CEILING_STYLE)
        ax.axhline(0, color="0.8", linewidth=0.6)
        labels = ["ceiling"] + [f"{m}\n({layers.get(region, {}).get(m, '?')})" for m in models]
        ax.set_xticks(positions, labels, rotation=45, ha="right")
        ax.set_title(f"{region} (n = {len(series[0])} neuroids)")
        ax.spines[["top", "right"]].set_visible(False)
    bound = "√reliability" if normalisation == "r^2/c" else "reliability"
    axes[0, 0].set_ylabel(f"held-out Pearson r per neuroid\n(ceiling: split-half {bound})")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    _save(fig, paths)


# -- 5. learning rules ---------------------------------------------------------------------------
def learning_rule_groups(models: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """Trained models grouped by (architecture, objective), each group's models sorted by learning rule
    then name; untrained controls and reference networks are not trained by a rule and are left out."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, entry in models.items():
        objective = entry.get("objective", "supervised")
        if objective in NOT_TRAINED or entry.get("source", "builtin") != "builtin":  # named networks: not trained here
            continue
        groups.setdefault((entry.get("architecture", "alexnet_small"), objective), []).append(name)
    return {key: sorted(names, key=lambda n: (models[n].get("learning_rule", "backprop"), n))
            for key, names in sorted(groups.items())}


def learning_rule_figure(best: pd.DataFrame, models: Mapping[str, Mapping[str, Any]], region_order: list[str],
                         paths: Sequence[str | Path]) -> None:
    """Per (architecture, objective) group, the predictivity of each learning rule's model in each region
    (layer chosen on training stimuli, 95% CI), the noise ceiling dashed; a colour per learning rule."""
    groups = learning_rule_groups(models)
    normalisation = _normalisation(best)
    rules = sorted({models[n].get("learning_rule", "backprop") for names in groups.values() for n in names})
    fig, axes = plt.subplots(max(len(groups), 1), 1, figsize=(min(DOUBLE_COLUMN, 3.5 + 1.1 * len(region_order)),
                                                              2.4 * max(len(groups), 1)), squeeze=False)
    if not groups:
        _note(axes[0, 0], "no trained models in this config\n(untrained and reference networks have no learning rule)",
              empty=True)
    for ax, ((architecture, objective), names) in zip(axes[:, 0], groups.items(), strict=False):
        width = 0.8 / len(names)
        for index, name in enumerate(names):
            rule = models[name].get("learning_rule", "backprop")
            rows = best[best["model"] == name].set_index("region").reindex(region_order)
            x = np.arange(len(region_order)) - 0.4 + width * (index + 0.5)
            ax.bar(x, rows["score"], width=width * 0.9, color=OKABE_ITO[rules.index(rule) % len(OKABE_ITO)],
                   yerr=_ci_errors(rows.reset_index()), capsize=2, error_kw={"linewidth": 0.8},
                   label=rule if name == rule else f"{rule} ({name})")
        ceilings = best[best["region"].isin(region_order)].groupby("region")["ceiling"].first()
        for position, region in enumerate(region_order):
            if region in ceilings:
                level = ceiling_level(normalisation, ceilings[region])
                ax.hlines(level, position - 0.45, position + 0.45, **CEILING_STYLE)
        n_neuroids = best.groupby("region")["n_neuroids"].max()
        ax.set_xticks(range(len(region_order)),
                      [f"{r}\nn={int(n_neuroids[r])}" if r in n_neuroids else r for r in region_order])
        ax.set_ylabel(score_label(normalisation))
        ax.set_title(f"{architecture}, {objective} (n = {len(names)} models)")
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel("brain region (hierarchy order; n = neuroids)")
    fig.tight_layout()
    _save(fig, paths)


def chosen_layer_scores(best: pd.DataFrame, fits: Sequence[Mapping[str, str]], dataset: str,
                        metric: str) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, str]]]:
    """Per region and model, the held-out r of each neuroid (mean over splits) at the layer the
    ``best_layer`` table chose; ``fits`` are the fit artefacts keyed by dataset/metric/model/layer/region."""
    import xarray as xr

    chosen = best[(best["dataset"] == dataset) & (best["metric"] == metric)]
    layer_of = {(row.model, row.region): row.layer for row in chosen.itertuples()}
    per_neuroid: dict[str, dict[str, np.ndarray]] = {}
    layers: dict[str, dict[str, str]] = {}
    for fit in fits:
        if (fit["dataset"], fit["metric"]) != (dataset, metric):
            continue
        if layer_of.get((fit["model"], fit["region"])) != fit["layer"]:
            continue
        with xr.open_dataset(fit["path"], engine="h5netcdf") as ds:
            if "test_r" not in ds or "neuroid" not in ds["test_r"].dims:
                raise ValueError(f"{fit['path']}: no per-neuroid 'test_r' (split, neuroid); metric {metric!r} "
                                 "has no per-neuroid scores")
            per_neuroid.setdefault(fit["region"], {})[fit["model"]] = ds["test_r"].mean("split").values
        layers.setdefault(fit["region"], {})[fit["model"]] = fit["layer"]
    return per_neuroid, layers


def neuroid_ceilings(path: str | Path) -> dict[str, np.ndarray]:
    """Per region, each neuroid's split-half reliability (mean over splits) from a ceiling artefact."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        reliability = ds["reliability"].mean("split").values
        regions = ds["region"].values.astype(str)
    return {str(r): reliability[regions == r] for r in np.unique(regions)}
