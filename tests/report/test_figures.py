"""The figures: each writes a non-empty PNG and SVG from small synthetic tables, and the numbers drawn
(correlation and its CI, ceilings in r units, learning-rule groups, chosen-layer scores) are right."""

from __future__ import annotations

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


def test_performance_vs_predictivity_draws_the_correlation(tmp_path):
    models = ["m0", "m1", "m2", "m3"]
    accuracy = [0.15, 0.3, 0.5, 0.7]
    scores = {m: [0.1 + a, 0.2 + a / 2, 0.1 + a] for m, a in zip(models, accuracy, strict=True)}
    perf = {m: {"heldout_accuracy": a, "chance": 0.125} for m, a in zip(models, accuracy, strict=True)}
    perf["selfsup"] = {"heldout_loss": 1.2}  # no accuracy: left out
    paths = outputs(tmp_path, "perf")
    result = figures.performance_vs_predictivity(best_table(models, scores), perf, REGIONS, paths, n_boot=200)
    assert_written(paths)
    assert list(result["region"]) == REGIONS
    assert (result["n_models"] == 4).all()
    assert result["r"].to_numpy() == pytest.approx([1.0, 1.0, 1.0])
    assert "r = 1.00" in paths[1].read_text()


def test_performance_vs_predictivity_with_too_few_models_says_so(tmp_path):
    paths = outputs(tmp_path, "perf")
    perf = {"a": {"heldout_accuracy": 0.2}, "b": {"heldout_accuracy": 0.4}}
    result = figures.performance_vs_predictivity(best_table(["a", "b"]), perf, REGIONS, paths)
    assert_written(paths)
    assert result["r"].isna().all() and (result["n_models"] == 2).all()
    assert "not enough models" in paths[1].read_text()


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
