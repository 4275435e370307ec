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

from neurofit.report.columns import normalisation_method, significant_pairs  # noqa: E402

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
CEILING_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.0}
# Widths in inches: one and two journal columns (89 mm and 183 mm).
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.2
# Below 5 models a bootstrap over the models has too few distinct resamples: its CI spans nearly [-1, 1].
MIN_MODELS_FOR_CORRELATION = 5
# Objectives that are not a network trained by a learning rule.
NOT_TRAINED = ("untrained", "reference")

# svg.hashsalt: SVG element ids from a fixed salt instead of a random one, so a rerun writes the same bytes.
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                     "xtick.labelsize": 7, "ytick.labelsize": 7, "svg.fonttype": "none", "svg.hashsalt": "neurofit"})
# No creation date in the files (matplotlib writes one into SVGs by default): a rerun gives identical bytes.
NO_DATE = {"svg": {"Date": None}, "png": {}}


def style(index: int) -> dict[str, str]:
    """Colour and marker of the index-th series: colour cycles first, markers keep >8 series apart."""
    return {"color": OKABE_ITO[index % len(OKABE_ITO)], "marker": MARKERS[(index // len(OKABE_ITO)) % len(MARKERS)]}


def _save(fig: plt.Figure, paths: Sequence[str | Path]) -> None:
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=300, bbox_inches="tight", metadata=NO_DATE.get(Path(path).suffix.lstrip("."), {}))
    plt.close(fig)


def _note(ax: plt.Axes, text: str, empty: bool = False) -> None:
    """A message drawn on the axes where the data cannot support the figure: at the top, over the data
    drawn, or in the middle of an axes left empty (``empty``)."""
    if empty:
        ax.set_axis_off()
    ax.text(0.5, 0.5 if empty else 0.97, text, transform=ax.transAxes, ha="center", va="center" if empty else "top",
            fontsize=7, color="#D55E00", bbox={"facecolor": "white", "edgecolor": "#D55E00", "boxstyle": "round"})


def score_label(normalisation: str) -> str:
    if normalisation_method(normalisation) == "none":
        return "predictivity\n(median held-out Pearson r)"
    return f"ceiling-normalised predictivity\n({normalisation}; 1 = noise ceiling)"


def ceiling_as_r(reliability: np.ndarray, normalisation: str) -> np.ndarray:
    """A neuroid's noise ceiling in units of its Pearson r: under r^2/c the ceiling bounds r^2, so r is
    bounded by its square root; the other conventions divide r by the reliability itself."""
    reliability = np.asarray(reliability, dtype=float)
    if normalisation_method(normalisation) == "r^2/c":
        return np.sqrt(np.where(reliability >= 0, reliability, np.nan))
    return reliability


def ceiling_level(normalisation: str, ceiling: float) -> float:
    """Where the noise ceiling lies on the score axis: 1 once normalised, the raw ceiling otherwise."""
    return float(ceiling) if normalisation_method(normalisation) == "none" else 1.0


def _normalisation(table: pd.DataFrame) -> str:
    return str(table["normalisation"].iloc[0]) if len(table) else "none"


def _ci_errors(rows: pd.DataFrame) -> np.ndarray:
    """(2, n) distances from the score to its CI bounds, for ``errorbar(yerr=...)``."""
    low = (rows["score"] - rows["ci_low"]).clip(lower=0).fillna(0).to_numpy()
    high = (rows["ci_high"] - rows["score"]).clip(lower=0).fillna(0).to_numpy()
    return np.vstack([low, high])


# -- 1. layer x region heatmap -------------------------------------------------------------------
def significance_lines(comparisons: pd.DataFrame | None, model: str, region: str, max_names: int = 3) -> list[str]:
    """One line per model that ``model`` explains ``region`` significantly better than (``> a``) or worse
    than (``< c``), from the paired comparisons' ``significant`` column; at most ``max_names`` of each."""
    if comparisons is None or not len(comparisons):
        return []
    pairs = significant_pairs(comparisons, region)
    lines = []
    for sign, names in ((">", pairs.loc[pairs["better"] == model, "worse"]),
                        ("<", pairs.loc[pairs["worse"] == model, "better"])):
        names = sorted(names)
        lines += [f"{sign} {name}" for name in names[:max_names]]
        if len(names) > max_names:
            lines.append(f"{sign} {len(names) - max_names} more")
    return lines


def layer_region_heatmap(table: pd.DataFrame, model: str, layer_order: list[str], region_order: list[str],
                         paths: Sequence[str | Path], best: pd.DataFrame | None = None,
                         comparisons: pd.DataFrame | None = None) -> None:
    """Ceiling-normalised predictivity of each layer (rows) for each region (columns), each cell with
    its 95% CI; the colour scale tops out at the ceiling (1) unless a score exceeds it, and starts below
    0 when a layer anti-correlates. With ``best`` the layer chosen per region on training stimuli is boxed;
    with ``comparisons`` the column label lists the models this one explains the region significantly
    better (``>``) or worse (``<``) than, at their chosen layers (paired test, Holm p < 0.05)."""
    sub = table[table["model"] == model]
    normalisation = _normalisation(sub)

    def grid(column: str) -> np.ndarray:
        return sub.pivot_table(index="layer", columns="region", values=column).reindex(
            index=layer_order, columns=region_order).to_numpy(dtype=float)

    score, low, high = grid("score"), grid("ci_low"), grid("ci_high")
    n_neuroids = sub.groupby("region")["n_neuroids"].max().reindex(region_order)
    marks = [significance_lines(comparisons, model, region) for region in region_order]
    extra = max((len(m) for m in marks), default=0)
    fig, ax = plt.subplots(figsize=(min(DOUBLE_COLUMN, 1.6 + 0.95 * len(region_order)),
                                    1.0 + 0.42 * len(layer_order) + 0.12 * extra))
    finite = np.isfinite(score).any()
    top = max(1.0, float(np.nanmax(score))) if finite else 1.0
    bottom = min(0.0, float(np.nanmin(score))) if finite else 0.0
    image = ax.imshow(score, cmap="viridis", aspect="auto", vmin=bottom, vmax=top)
    for (i, j), value in np.ndenumerate(score):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}\n[{low[i, j]:.2f}, {high[i, j]:.2f}]", ha="center", va="center",
                    fontsize=5.5, color="white" if value < bottom + 0.6 * (top - bottom) else "black")
    if best is not None:
        chosen = best[best["model"] == model].set_index("region")["layer"]
        for j, region in enumerate(region_order):
            if region in chosen and chosen[region] in layer_order:
                i = layer_order.index(chosen[region])
                ax.add_patch(plt.Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, edgecolor="#D55E00",
                                           linewidth=1.5))
    labels = []
    for region, n, lines in zip(region_order, n_neuroids, marks, strict=True):
        labels.append("\n".join([f"{region}\nn={int(n)}" if np.isfinite(n) else region, *lines]))
    ax.set_xticks(range(len(region_order)), labels)
    ax.set_yticks(range(len(layer_order)), layer_order)
    ax.set_xlabel("brain region (n = neuroids" + (")\n> m / < m: explains it significantly better / worse than m "
                                                  "(paired test)" if comparisons is not None else ")"))
    ax.set_ylabel("model layer (input to output)")
    metric = sub["metric"].iloc[0] if len(sub) else ""
    n_stimuli = int(sub["n_stimuli"].max()) if len(sub) else 0
    boxed = "; box: layer chosen on training stimuli" if best is not None else ""
    ax.set_title(f"{model}: {metric}, {n_stimuli} stimuli\ncell: score [95% CI]{boxed}")
    bar = fig.colorbar(image, ax=ax, label=score_label(normalisation))
    if normalisation_method(normalisation) != "none":
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


# One accuracy per axis: the classifier's own accuracy when every model has a classifier for the task
# (supervised and untrained networks), else a linear probe of the last block, defined for every objective.
ACCURACIES = {"heldout_accuracy": "classifier accuracy on held-out task images",
              "probe_accuracy": "linear-probe accuracy on held-out task images"}


def is_reference(entry: Mapping[str, Any]) -> bool:
    """A ground-truth network (the simulator's hidden one, weights ``simulated:<dataset>``), not a candidate."""
    return entry.get("objective") == "reference" or str(entry.get("weights", "")).startswith("simulated:")


def pick_accuracy(performance: Mapping[str, Mapping[str, Any]]) -> str:
    """The accuracy every one of these models reports: ``heldout_accuracy`` if all do, else ``probe_accuracy``."""
    if performance and all(p.get("heldout_accuracy") is not None for p in performance.values()):
        return "heldout_accuracy"
    return "probe_accuracy"


def task_performance(performance: Mapping[str, Any], accuracy: str = "heldout_accuracy") -> float | None:
    """A model's held-out task accuracy (fraction correct) of the kind ``accuracy`` (a key of ``ACCURACIES``);
    None where the model does not report it."""
    value = performance.get(accuracy)
    return None if value is None else float(value)


def _significantly_below_best(comparisons: pd.DataFrame | None, region: str, best_model: str) -> set[str]:
    """Models whose score in ``region`` is significantly below ``best_model``'s (paired test, Holm)."""
    if comparisons is None or not len(comparisons):
        return set()
    pairs = significant_pairs(comparisons, region)
    return set(pairs.loc[pairs["better"] == best_model, "worse"])


def performance_vs_predictivity(best: pd.DataFrame, performance: Mapping[str, Mapping[str, Any]],
                                region_order: list[str], paths: Sequence[str | Path], n_boot: int = 2000,
                                seed: int = 0, models: Mapping[str, Mapping[str, Any]] | None = None,
                                comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """Yamins et al. 2014 Fig. 2 style: one panel per region, one point per candidate model (its held-out
    task accuracy, one definition for all, against its predictivity at the layer chosen on training stimuli,
    with the 95% CI), the Pearson r across models with its bootstrap CI and a least-squares line when there
    are at least ``MIN_MODELS_FOR_CORRELATION`` models (else the panel says so).

    Reference networks (``models[name]`` with weights ``simulated:<dataset>``, or ``objective: reference``
    in ``performance``) are ground truth, not candidates: drawn as a band (score and CI) and left out of r.
    With ``comparisons`` (:func:`~neurofit.report.comparisons.comparison_table`), candidates whose score is
    significantly below the panel's best candidate are drawn open. Returns the per-region correlations."""
    entries = {m: {**performance[m], **(models or {}).get(m, {})} for m in performance}
    references = sorted(m for m, e in entries.items() if is_reference(e))
    candidates = {m: p for m, p in performance.items() if m not in references}
    accuracy = pick_accuracy(candidates)
    values = {m: task_performance(p, accuracy) for m, p in candidates.items()}
    order = sorted(m for m, a in values.items() if a is not None)
    left_out = sorted(m for m, a in values.items() if a is None)
    chance = [float(p["chance"]) for m, p in candidates.items() if m in order and "chance" in p]
    normalisation = _normalisation(best)
    n_panels = max(len(region_order), 1)
    fig, axes = plt.subplots(1, n_panels, figsize=(min(DOUBLE_COLUMN, 2.3 * n_panels + 0.4), 3.2), sharey=True,
                             squeeze=False, layout="constrained")
    results = []
    for ax, region in zip(axes[0], region_order, strict=False):
        rows = best[best["region"] == region].set_index("model")
        present = [m for m in order if m in rows.index]
        x = np.array([values[m] for m in present])
        y = rows.loc[present, "score"].to_numpy(dtype=float) if present else np.array([])
        below = _significantly_below_best(comparisons, region, present[int(np.nanargmax(y))]) if present else set()
        for index, model in enumerate(present):
            marker = style(order.index(model))
            face = "white" if model in below else marker["color"]
            ax.errorbar(x[index], y[index], yerr=_ci_errors(rows.loc[[model]]), capsize=2, linestyle="none",
                        markersize=4.5, markerfacecolor=face, label=model, **marker)
        for ref in (m for m in references if m in rows.index):
            row = rows.loc[ref]
            ax.axhspan(row["ci_low"], row["ci_high"], color="0.88", zorder=0, linewidth=0)
            ax.axhline(row["score"], color="0.3", linestyle="-.", linewidth=1,
                       label=f"{ref}: ground-truth network,\nband: 95% CI (not in r)")
        if len(rows):
            ax.axhline(ceiling_level(normalisation, rows["ceiling"].iloc[0]), **CEILING_STYLE, label="noise ceiling")
        if chance:
            ax.axvline(chance[0], color="0.6", linestyle=":", linewidth=1, label="chance")
        enough = len(present) >= MIN_MODELS_FOR_CORRELATION
        r, low, high = correlation_with_ci(x, y, n_boot=n_boot, seed=seed) if enough else (np.nan,) * 3
        results.append({"region": region, "r": r, "ci_low": low, "ci_high": high, "n_models": len(present),
                        "accuracy": accuracy, "references_left_out": ",".join(references)})
        if not enough:  # said in the title, so the message hides no data
            stats = (f"n = {len(present)} models: not enough models\nfor a correlation "
                     f"(a CI needs >= {MIN_MODELS_FOR_CORRELATION})")
        elif np.isfinite(r):
            slope, intercept = np.polyfit(x, y, 1)
            grid = np.linspace(x.min(), x.max(), 2)
            ax.plot(grid, slope * grid + intercept, color="0.2", linewidth=0.8)
            stats = f"r = {r:.2f} [{low:.2f}, {high:.2f}]\nn = {len(present)} models"
        else:
            _note(ax, f"no correlation: task accuracy or predictivity\nis constant over the n = {len(present)} models")
            stats = f"n = {len(present)} models"
        ax.set_title(f"{region}\n{stats}")
        ax.set_xlabel(ACCURACIES[accuracy].replace(" on ", " on\n") + "\n(fraction correct)")
        ax.set_xlim(-0.02, 1.02)  # the whole range of a fraction correct, the same in every panel
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel(score_label(normalisation))
    # one legend for all panels: models by colour (filled), then the lines, then what open markers mean
    unique: dict[str, Any] = {m: plt.Line2D([], [], linestyle="none", markersize=4.5, **style(i))
                              for i, m in enumerate(order)}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in order:
                unique.setdefault(label, handle)
    if comparisons is not None and len(comparisons):
        unique["open: significantly below the panel's best model\n(paired test, Holm p < 0.05)"] = \
            plt.Line2D([], [], marker="o", markerfacecolor="white", color="0.3", linestyle="none")
    if left_out:
        unique[f"left out (no {accuracy}): {', '.join(left_out)}"] = plt.Line2D([], [], linestyle="none")
    if unique:
        fig.legend(list(unique.values()), list(unique), frameon=False, loc="outside lower center",
                   ncol=min(3, len(unique)))
    fig.suptitle("task performance vs predictivity (Pearson r across models, 95% bootstrap CI)", fontsize=8)
    _save(fig, paths)
    return pd.DataFrame(results, columns=["region", "r", "ci_low", "ci_high", "n_models", "accuracy",
                                          "references_left_out"])


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
    bound = "√reliability" if normalisation_method(normalisation) == "r^2/c" else "reliability"
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


def untrained_controls(models: Mapping[str, Mapping[str, Any]], architecture: str) -> list[str]:
    """The untrained models of ``architecture`` (the control of a learning-rule comparison)."""
    return sorted(n for n, e in models.items()
                  if e.get("objective") == "untrained" and e.get("architecture", "alexnet_small") == architecture)


def learning_rule_figure(best: pd.DataFrame, models: Mapping[str, Mapping[str, Any]], region_order: list[str],
                         paths: Sequence[str | Path],
                         performance: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """Per (architecture, objective) group, one row: left, each learning rule's held-out task accuracy
    (one definition per group, :func:`pick_accuracy`) with chance dotted; right, its predictivity in each
    region (layer chosen on training stimuli, 95% CI) with the noise ceiling dashed. The untrained control
    of the same architecture is drawn beside the rules (grey, hatched). A group with a single rule says
    "not enough models" on its face: its bars show one rule, not a comparison."""
    performance = performance or {}
    groups = learning_rule_groups(models)
    normalisation = _normalisation(best)
    rules = sorted({models[n].get("learning_rule", "backprop") for names in groups.values() for n in names})
    n_rows = max(len(groups), 1)
    fig, axes = plt.subplots(n_rows, 2, figsize=(min(DOUBLE_COLUMN, 4.2 + 1.0 * len(region_order)), 2.8 * n_rows),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1.2, max(len(region_order), 1) + 0.5]})
    if not groups:
        axes[0, 1].set_axis_off()
        _note(axes[0, 0], "no trained models in this config\n(untrained and reference networks have no learning rule)",
              empty=True)
    n_neuroids = best.groupby("region")["n_neuroids"].max()
    ceilings = best[best["region"].isin(region_order)].groupby("region")["ceiling"].first()
    for (acc_ax, ax), ((architecture, objective), names) in zip(axes, groups.items(), strict=False):
        controls = [c for c in untrained_controls(models, architecture) if c in set(best["model"])]
        bars = [(name, models[name].get("learning_rule", "backprop")) for name in names] + \
               [(c, None) for c in controls]

        def look(name: str, rule: str | None) -> dict[str, Any]:
            if rule is None:
                return {"color": "0.75", "hatch": "///", "edgecolor": "0.35", "linewidth": 0.5}
            return {"color": OKABE_ITO[rules.index(rule) % len(OKABE_ITO)]}

        def label(name: str, rule: str | None) -> str:
            if rule is None:
                return f"untrained control ({name})"
            return rule if name == rule else f"{rule} ({name})"

        group_perf = {n: performance[n] for n, _ in bars if n in performance}
        accuracy = pick_accuracy(group_perf)
        heights = [task_performance(group_perf.get(n, {}), accuracy) for n, _ in bars]
        for index, ((name, rule), height) in enumerate(zip(bars, heights, strict=True)):
            if height is not None:
                acc_ax.bar(index, height, width=0.8, **look(name, rule))
                acc_ax.text(index, height + 0.02, f"{height:.2f}", ha="center", va="bottom", fontsize=6)
        chance = [float(p["chance"]) for p in group_perf.values() if "chance" in p]
        if chance:
            acc_ax.axhline(chance[0], color="0.4", linestyle=":", linewidth=1, label="chance")
        if not any(h is not None for h in heights):
            _note(acc_ax, "no task accuracy\n(performance.json missing)")
        # the bars' colours and hatching are the legend's (right); dotted: chance
        acc_ax.set_xticks([])
        acc_ax.set_xlabel("as in legend\n(dotted: chance)")
        acc_ax.set_ylim(0, 1.1)
        acc_ax.set_ylabel(ACCURACIES[accuracy].replace(" on ", "\non ") + "\n(fraction correct)")
        acc_ax.set_title("task accuracy")
        acc_ax.spines[["top", "right"]].set_visible(False)

        width = 0.8 / len(bars)
        for index, (name, rule) in enumerate(bars):
            rows = best[best["model"] == name].set_index("region").reindex(region_order)
            x = np.arange(len(region_order)) - 0.4 + width * (index + 0.5)
            ax.bar(x, rows["score"], width=width * 0.9, yerr=_ci_errors(rows.reset_index()), capsize=2,
                   error_kw={"linewidth": 0.8}, label=label(name, rule), **look(name, rule))
        for position, region in enumerate(region_order):
            if region in ceilings:
                ax.hlines(ceiling_level(normalisation, ceilings[region]), position - 0.45, position + 0.45,
                          **CEILING_STYLE, label="noise ceiling" if position == 0 else None)
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.set_xticks(range(len(region_order)),
                      [f"{r}\nn={int(n_neuroids[r])}" if r in n_neuroids else r for r in region_order])
        ax.set_ylabel(score_label(normalisation))
        n_rules = len({r for _, r in bars if r is not None})
        ax.set_title(f"{architecture}, {objective}: {n_rules} learning rule{'s' if n_rules != 1 else ''}"
                     f"{' + untrained control' if controls else ''}")
        if n_rules < 2:
            ax.set_ylim(top=max(ax.get_ylim()[1], 1.4))  # room for the note above the ceiling
            _note(ax, "not enough models for a learning-rule comparison:\n"
                      f"one rule ({rules[0] if len(rules) == 1 else names[0]}); add models with other rules")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlabel("brain region (hierarchy order; n = neuroids)")
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
