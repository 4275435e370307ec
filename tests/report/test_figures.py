"""The figures: each writes a non-empty PNG and SVG from small synthetic tables, and the numbers drawn
(correlation and its CI, ceilings in r units, learning-rule groups, chosen-layer scores) are right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurofit.report import figures

REGIONS = ["V1", "V4", "IT"]
LAYERS = ["conv1", "conv2", "fc"]


def best_table(models: list[str], scores: dict[str, list[float]] | None = None) -> pd.DataFrame:
    rows = []
    for i, model in enumerate(models):
        for j, region in enumerate(REGIONS):
            score = scores[model][j] if scores else 0.2 + 0.1 * i + 0.05 * j
            rows.append({"dataset": "sim", "model": model, "layer": LAYERS[j], "region": region, "metric": "ridge",
                         "raw": score, "ceiling": 0.8, "score": score, "normalisation": "r^2/c",
                         "ci_low": score - 0.05, "ci_high": score + 0.05, "n_neuroids": 8, "n_stimuli": 48,
                         "layer_choices": ",".join([LAYERS[j], LAYERS[j], LAYERS[max(j - 1, 0)]])})
    return pd.DataFrame(rows)


def full_table(models: list[str]) -> pd.DataFrame:
    rows = [{**row, "layer": layer, "score": row["score"] - 0.02 * k}
            for row in best_table(models).to_dict("records") for k, layer in enumerate(LAYERS)]
    return pd.DataFrame(rows).drop(columns="layer_choices")


def outputs(tmp_path, name):
    return [tmp_path / f"{name}.png", tmp_path / f"{name}.svg"]


def assert_written(paths):
    for path in paths:
        assert path.stat().st_size > 1000, path
    assert paths[1].read_text().lstrip().startswith(("<?xml", "<svg"))


def test_heatmap_and_best_layer_figures_are_written(tmp_path):
    table = full_table(["a", "b"])
    heatmap = outputs(tmp_path, "heatmap_a")
    figures.layer_region_heatmap(table, "a", LAYERS, REGIONS, heatmap)
    assert_written(heatmap)
    assert "n=8" in heatmap[1].read_text()  # neuroids per region on the axis
    best = outputs(tmp_path, "best")
    figures.best_layer_figure(best_table(["a", "b"]), {"a": LAYERS, "b": LAYERS}, REGIONS, best)
    assert_written(best)
    assert "n = 3 splits" in best[1].read_text()


def test_relative_depth():
    assert figures.relative_depth("conv1", LAYERS) == 0
    assert figures.relative_depth("fc", LAYERS) == 1
    assert np.isnan(figures.relative_depth("missing", LAYERS))


def test_correlation_and_bootstrap_ci():
    x = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    r, low, high = figures.correlation_with_ci(x, 2 * x + 1)
    assert r == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    y = x + rng.normal(0, 0.2, len(x))
    r, low, high = figures.correlation_with_ci(x, y, n_boot=500)
    assert r == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert -1 <= low <= r <= high <= 1 and high - low > 0.01
    assert figures.correlation_with_ci(x, y, seed=3) == figures.correlation_with_ci(x, y, seed=3)
    assert np.isnan(figures.correlation_with_ci(x[:2], y[:2])[0])  # fewer than 3 models
    assert np.isnan(figures.correlation_with_ci(x, np.ones_like(x))[0])  # constant predictivity


@pytest.fixture
def drawn(monkeypatch):
    """The figures a test draws, kept open (``_save`` still writes the files)."""
    kept = []
    save = figures._save

    def keep(fig, paths):
        fig.canvas.draw()
        kept.append(fig)
        for path in paths:
            fig.savefig(path, dpi=100, bbox_inches="tight", metadata=figures.NO_DATE[Path(path).suffix[1:]])

    monkeypatch.setattr(figures, "_save", keep)
    yield kept
    monkeypatch.setattr(figures, "_save", save)
    for fig in kept:
        figures.plt.close(fig)


def drawn_texts(fig) -> list:
    """The texts a drawn figure shows: titles, axis labels, notes, legends and the tick labels in view."""
    texts = [*fig.texts, *(t for legend in fig.legends for t in legend.get_texts())]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend():
            texts += ax.get_legend().get_texts()
        for axis, (low, high) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            texts += [tick.label1 for tick in axis.get_major_ticks()
                      if tick.label1.get_visible() and low - 1e-9 <= tick.get_loc() <= high + 1e-9]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts of a figure whose boxes overlap, once drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn_texts(fig)]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
            if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0]


def fitted_lines(ax) -> list:
    """Solid lines with data on both ends: the least-squares line (not ceiling, chance or reference lines)."""
    return [line for line in ax.lines if line.get_linestyle() == "-" and len(line.get_xdata()) == 2
            and line.get_color() == "0.2"]


YAMINS = ["m0", "m1", "m2", "m3", "m4"]
ACCURACY = [0.15, 0.3, 0.5, 0.7, 0.8]


def yamins_inputs(models=YAMINS, accuracy=ACCURACY):
    scores = {m: [0.1 + a, 0.2 + a / 2, 0.1 + a] for m, a in zip(models, accuracy, strict=True)}
    scores["reference"] = [0.05, 0.05, 0.05]  # a ground truth far off the candidates' line
    perf = {m: {"heldout_accuracy": a, "probe_accuracy": 0.9 - a, "chance": 0.125}
            for m, a in zip(models, accuracy, strict=True)}
    perf["reference"] = {"heldout_accuracy": 0.99, "probe_accuracy": 0.99, "chance": 0.125, "objective": "reference"}
    settings = {m: {"objective": "supervised"} for m in models} | {"reference": {"weights": "simulated:sim"}}
    return best_table([*models, "reference"], scores), perf, settings


def test_performance_vs_predictivity_leaves_the_reference_out_of_r(tmp_path, drawn):
    best, perf, settings = yamins_inputs()
    paths = outputs(tmp_path, "perf")
    result = figures.performance_vs_predictivity(best, perf, REGIONS, paths, n_boot=200, models=settings)
    assert_written(paths)
    assert list(result["region"]) == REGIONS and (result["n_models"] == 5).all()
    assert result["r"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])  # the reference would pull r below 1
    assert (result["references_left_out"] == "reference").all() and (result["accuracy"] == "heldout_accuracy").all()
    svg = paths[1].read_text()
    assert "r = 1.00" in svg and "ground-truth network" in svg and "classifier accuracy on" in svg
    fig = drawn[0]
    for ax in fig.axes:
        assert len(fitted_lines(ax)) == 1
        xs = [line.get_xdata()[0] for line in ax.lines if line.get_marker() not in ("None", "", None)]
        assert 0.99 not in xs  # the reference is a band, not a point on the accuracy axis
    assert overlapping_texts(fig) == []


def test_one_accuracy_definition_per_axis(tmp_path):
    best, perf, settings = yamins_inputs()
    perf["m0"] = {**perf["m0"], "heldout_accuracy": None}  # e.g. a self-supervised model: no classifier
    result = figures.performance_vs_predictivity(best, perf, REGIONS, outputs(tmp_path, "perf"), n_boot=100,
                                                 models=settings)
    # every candidate is placed at its linear-probe accuracy (0.9 - a): r flips sign, none is mixed in
    assert (result["accuracy"] == "probe_accuracy").all() and (result["n_models"] == 5).all()
    assert result["r"].to_numpy() == pytest.approx([-1.0, -1.0, -1.0])
    assert "linear-probe accuracy on" in outputs(tmp_path, "perf")[1].read_text()


@pytest.mark.parametrize("n_models", [2, 3, 4])
def test_with_too_few_models_the_panel_says_so_and_draws_no_line(tmp_path, drawn, n_models):
    best, perf, settings = yamins_inputs(YAMINS[:n_models], ACCURACY[:n_models])
    paths = outputs(tmp_path, "perf")
    result = figures.performance_vs_predictivity(best, perf, REGIONS, paths, models=settings)
    assert_written(paths)
    assert result["r"].isna().all() and result["ci_low"].isna().all() and (result["n_models"] == n_models).all()
    assert "not enough models" in paths[1].read_text()
    assert all(fitted_lines(ax) == [] for ax in drawn[0].axes)
    assert overlapping_texts(drawn[0]) == []


def comparisons_for(best: pd.DataFrame, better: str, worse: list[str]) -> pd.DataFrame:
    rows = [{"dataset": "sim", "region": region, "metric": "ridge", "model_a": better, "model_b": other,
             "difference": 0.2, "p_holm": 0.01, "significant": True} for region in REGIONS for other in worse]
    return pd.DataFrame(rows)


def test_significant_differences_are_marked(tmp_path, drawn):
    best, perf, settings = yamins_inputs()
    comparisons = comparisons_for(best, "m4", ["m0", "m1"])  # m4 is each panel's best model
    figures.performance_vs_predictivity(best, perf, REGIONS, outputs(tmp_path, "perf"), models=settings,
                                        comparisons=comparisons, n_boot=100)
    for ax in drawn[0].axes:  # open: significantly below the panel's best model (m4); filled: the others
        faces = {c.get_label(): c.lines[0].get_markerfacecolor() for c in ax.containers}
        assert faces["m0"] == faces["m1"] == "white" and "white" not in (faces["m2"], faces["m3"], faces["m4"])
    table = full_table(["m4", "m0"])
    heatmap = outputs(tmp_path, "heatmap")
    figures.layer_region_heatmap(table, "m4", LAYERS, REGIONS, heatmap, best, comparisons)
    svg = heatmap[1].read_text()
    assert "&gt; m0" in svg and "&gt; m1" in svg and "box: layer chosen on training stimuli" in svg
    figures.layer_region_heatmap(table, "m0", LAYERS, REGIONS, heatmap, best, comparisons)
    assert "&lt; m4" in heatmap[1].read_text()


def test_heatmap_colour_scale_shows_negative_scores(tmp_path, drawn):
    table = full_table(["a"]).assign(score=lambda t: t["score"] - 0.5)
    figures.layer_region_heatmap(table, "a", LAYERS, REGIONS, outputs(tmp_path, "neg"))
    image = drawn[0].axes[0].images[0]
    assert image.norm.vmin == pytest.approx(table["score"].min()) and image.norm.vmax == 1.0


def test_learning_rule_groups_leave_out_untrained_and_reference():
    models = {
        "ss": {"architecture": "alexnet_small", "objective": "supervised", "learning_rule": "sign_symmetry"},
        "bp": {"architecture": "alexnet_small", "objective": "supervised"},
        "fa": {"architecture": "alexnet_small", "objective": "supervised", "learning_rule": "feedback_alignment"},
        "res": {"architecture": "resnet_small", "objective": "simclr", "learning_rule": "backprop"},
        "untrained": {"architecture": "alexnet_small", "objective": "untrained"},
        "reference": {"architecture": "alexnet_small", "objective": "reference"},
    }
    assert figures.learning_rule_groups(models) == {("alexnet_small", "supervised"): ["bp", "fa", "ss"],
                                                    ("resnet_small", "simclr"): ["res"]}


@pytest.mark.parametrize("models", [
    {"bp": {"architecture": "alexnet_small", "objective": "supervised", "learning_rule": "backprop"}},
    {"bp": {"objective": "supervised"}, "fa": {"objective": "supervised", "learning_rule": "feedback_alignment"},
     "ss": {"objective": "supervised", "learning_rule": "sign_symmetry"}},
    {"untrained": {"objective": "untrained"}},
], ids=["backprop-only", "three-rules", "no-trained-model"])
def test_learning_rule_figure_is_drawn_for_any_set_of_rules(tmp_path, models):
    paths = outputs(tmp_path, "rules")
    figures.learning_rule_figure(best_table(list(models)), models, REGIONS, paths)
    assert_written(paths)
    svg = paths[1].read_text()
    if any(m.get("objective") == "supervised" for m in models.values()):
        for name, entry in models.items():
            rule = entry.get("learning_rule", "backprop")
            assert (rule if rule == name else f"{rule} ({name})") in svg
    else:
        assert "no trained models" in svg


def test_ceiling_as_r():
    reliability = np.array([0.64, 0.25, -0.1])
    assert figures.ceiling_as_r(reliability, "r^2/c")[:2] == pytest.approx([0.8, 0.5])
    assert np.isnan(figures.ceiling_as_r(reliability, "r^2/c")[2])
    assert figures.ceiling_as_r(reliability, "r/c") == pytest.approx(reliability)


def test_neuroid_scores_at_the_chosen_layer(tmp_path):
    fits = []
    for layer_index, layer in enumerate(LAYERS):
        for region in REGIONS:
            test_r = np.full((3, 4), 0.1 * layer_index) + np.arange(4) / 100
            path = tmp_path / f"{layer}_{region}.nc"
            xr.Dataset({"test_r": (("split", "neuroid"), test_r)}).to_netcdf(path, engine="h5netcdf")
            fits.append({"dataset": "sim", "metric": "ridge", "model": "a", "layer": layer, "region": region,
                         "path": str(path)})
    per_neuroid, layers = figures.chosen_layer_scores(best_table(["a"]), fits, "sim", "ridge")
    assert layers == {"V1": {"a": "conv1"}, "V4": {"a": "conv2"}, "IT": {"a": "fc"}}
    assert per_neuroid["IT"]["a"] == pytest.approx(0.2 + np.arange(4) / 100)
    ceiling = tmp_path / "ceiling.nc"
    xr.Dataset({"reliability": (("split", "neuroid"), np.tile([0.5, 0.6, 0.7, 0.8, 0.9, 0.4], (2, 2)))},
               coords={"region": ("neuroid", np.repeat(REGIONS, 4))}).to_netcdf(ceiling, engine="h5netcdf")
    ceilings = figures.neuroid_ceilings(ceiling)
    assert set(ceilings) == set(REGIONS) and all(len(v) == 4 for v in ceilings.values())
    paths = outputs(tmp_path, "neuroids")
    figures.neuroid_scores_figure(per_neuroid, ceilings, layers, REGIONS, "r^2/c", "sim, ridge", paths)
    assert_written(paths)
    assert "n = 4 neuroids" in paths[1].read_text()


def test_population_metric_fits_are_refused_for_the_neuroid_figure(tmp_path):
    path = tmp_path / "rsa.nc"
    xr.Dataset({"test_score": (("split",), np.ones(3))}).to_netcdf(path, engine="h5netcdf")
    fits = [{"dataset": "sim", "metric": "rsa", "model": "a", "layer": "conv1", "region": "V1", "path": str(path)}]
    best = best_table(["a"]).assign(metric="rsa")
    with pytest.raises(ValueError, match="no per-neuroid 'test_r'"):
        figures.chosen_layer_scores(best, fits, "sim", "rsa")


RULES = {"bp": {"architecture": "alexnet_small", "objective": "supervised", "learning_rule": "backprop"},
         "fa": {"architecture": "alexnet_small", "objective": "supervised", "learning_rule": "feedback_alignment"},
         "untrained": {"architecture": "alexnet_small", "objective": "untrained"},
         "reference": {"architecture": "alexnet_small", "objective": "reference"}}


def test_learning_rules_show_task_accuracy_and_the_untrained_control(tmp_path, drawn):
    perf = {"bp": {"heldout_accuracy": 0.6, "chance": 0.125}, "fa": {"heldout_accuracy": 0.3, "chance": 0.125},
            "untrained": {"heldout_accuracy": 0.125, "chance": 0.125}, "reference": {"heldout_accuracy": 0.9}}
    paths = outputs(tmp_path, "rules")
    figures.learning_rule_figure(best_table(list(RULES)), RULES, REGIONS, paths, perf)
    accuracy_ax, score_ax = drawn[0].axes[:2]
    heights = [patch.get_height() for patch in accuracy_ax.patches]
    assert heights == pytest.approx([0.6, 0.3, 0.125])  # backprop, feedback alignment, the untrained control
    assert "classifier accuracy" in accuracy_ax.get_ylabel()
    labels = [t.get_text() for t in score_ax.get_legend().get_texts()]
    assert {"backprop (bp)", "feedback_alignment (fa)", "untrained control (untrained)", "noise ceiling"} == set(labels)
    assert len(score_ax.patches) == 3 * len(REGIONS)  # a bar per region for each rule and the control
    svg = paths[1].read_text()
    assert "2 learning rules + untrained control" in svg and "not enough models" not in svg
    assert "n = 1 models" not in svg
    assert overlapping_texts(drawn[0]) == []


def test_one_learning_rule_says_not_enough_models(tmp_path, drawn):
    models = {name: RULES[name] for name in ("bp", "untrained")}
    perf = {"bp": {"heldout_accuracy": 0.6, "chance": 0.125}, "untrained": {"heldout_accuracy": 0.1, "chance": 0.125}}
    paths = outputs(tmp_path, "rules")
    figures.learning_rule_figure(best_table(list(models)), models, REGIONS, paths, perf)
    svg = paths[1].read_text()
    assert "not enough models" in svg and "1 learning rule + untrained control" in svg
    assert "untrained control (untrained)" in svg
    assert overlapping_texts(drawn[0]) == []


def test_figures_are_byte_identical_across_runs(tmp_path):
    # matplotlib salts SVG element ids randomly and writes the date unless told not to
    runs = []
    for run in ("first", "second"):
        folder = tmp_path / run
        perf_paths, rule_paths = outputs(folder, "perf"), outputs(folder, "rules")
        best, perf, settings = yamins_inputs()
        figures.performance_vs_predictivity(best, perf, REGIONS, perf_paths, n_boot=100, models=settings)
        figures.learning_rule_figure(best_table(list(RULES)), RULES, REGIONS, rule_paths)
        runs.append([p.read_bytes() for p in (*perf_paths, *rule_paths)])
    assert runs[0] == runs[1]
    assert b"<dc:date>" not in runs[0][1]


def test_the_figure_stages_import_neither_xarray_nor_the_encoding_code():
    """A figure job reads CSV tables only: importing the tables' builders (xarray, scipy, the fit code) would
    cost it 0.3 s. The per-neuroid figure reads fit files and imports xarray where it does so."""
    import subprocess
    import sys

    probe = ("import sys\nimport neurofit.cli, neurofit.report.figures\n"
             "print([m for m in ('xarray', 'scipy.linalg', 'neurofit.encoding.fit', 'neurofit.report.tables')"
             " if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
