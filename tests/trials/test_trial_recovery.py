"""Ground truth: the pipeline recovers which hidden network and which layer produced each simulated region."""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurofit.neural.nwb import open_nwb, read_intervals


def scores(table, model, region, metric="psth_ridge"):
    rows = table[(table["model"] == model) & (table["region"] == region) & (table["metric"] == metric)]
    return dict(zip(rows["layer"], rows["score"], strict=True))


def test_simulated_trials_table_looks_like_000006s(trial_pipeline):
    nwb = next((trial_pipeline["out"] / "sim" / "dandiset").rglob("*.nwb"))
    with open_nwb(nwb) as nwbfile:
        table = read_intervals(nwbfile, nwb, "trials")
    assert {"start_time", "stop_time", "type", "response", "is_good", "pole_in_time", "pole_out_time",
            "cue_start_time"} <= set(table.columns)
    assert set(table["type"]) == {"lick left", "lick right"} and set(table["is_good"]) <= {0, 1}
    # Event times are relative to the trial start, in task order, as in 000006.
    assert (table["pole_in_time"] < table["pole_out_time"]).all()
    assert (table["pole_out_time"] < table["cue_start_time"]).all() and (table["cue_start_time"] < 5).all()
    assert trial_pipeline["truth"]["reference_accuracy"] > 0.9


def test_each_region_is_best_explained_by_the_layer_that_drove_it(trial_pipeline):
    table = trial_pipeline["table"]
    for region, layer in trial_pipeline["truth"]["region_layer"].items():
        reference = scores(table, "reference", region)
        assert max(reference, key=reference.get) == layer, (region, reference)


def test_the_hidden_network_beats_an_untrained_rnn_and_the_shuffled_time_null(trial_pipeline):
    table = trial_pipeline["table"]
    truth = trial_pipeline["truth"]["region_layer"]
    recurrent_region = next(r for r, layer in truth.items() if layer == "recurrent")
    reference = scores(table, "reference", recurrent_region)["recurrent"]
    untrained = scores(table, "untrained", recurrent_region)["recurrent"]
    null = scores(table, "reference", recurrent_region, "psth_ridge_shuffled_time")["recurrent"]
    assert reference > untrained + 0.2 and reference > null + 0.5
    row = table[(table["model"] == "reference") & (table["region"] == recurrent_region)
                & (table["layer"] == "recurrent") & (table["metric"] == "psth_ridge")].iloc[0]
    assert row["ci_low"] <= row["score"] <= row["ci_high"] and row["normalisation"] == "r/c"
    assert row["task_accuracy"] > 0.9
    assert table.loc[table["model"] == "untrained", "task_accuracy"].iloc[0] < 0.75


def test_population_geometry_prefers_the_hidden_networks_recurrent_layer_for_alm(trial_pipeline):
    table = trial_pipeline["table"]
    for metric in ("procrustes", "rsa_condition_time"):
        reference = scores(table, "reference", "ALM", metric)
        assert reference["recurrent"] > reference["input"]
        assert reference["recurrent"] > scores(table, "reference", "ALM", f"{metric}_shuffled_time")["recurrent"]


def test_table_schema_and_predictivity_over_time(trial_pipeline):
    table = trial_pipeline["table"]
    assert {"dataset", "model", "layer", "region", "metric", "raw", "ceiling", "score", "normalisation", "ci_low",
            "ci_high", "n_neuroids", "n_stimuli"} <= set(table.columns)
    # models x layers x regions x (ridge, procrustes, rsa) x (fit, shuffled-time null)
    assert len(table) == len(trial_pipeline["models"]) * 3 * 2 * 3 * 2
    curves = xr.load_dataarray(trial_pipeline["out"] / "reference_time.nc", engine="h5netcdf")
    assert set(curves.dims) == {"layer", "region", "metric", "time"} and curves.sizes["time"] == 80
    recurrent = curves.sel(layer="recurrent", region="ALM", metric="psth_ridge").values
    assert np.nanmean(recurrent) > 0.5


def test_figures_are_written(trial_pipeline, tmp_path):
    from neurofit import cli

    out = trial_pipeline["out"]
    models = trial_pipeline["models"]
    cli.stage_trial_figures(str(out / "psth.nc"), {m: str(out / f"{m}.nc") for m in models},
                            {m: str(out / f"{m}_time.nc") for m in models}, str(out / "predictivity.csv"), "sim",
                            str(tmp_path / "trajectories.png"), str(tmp_path / "over_time.png"))
    for name in ("trajectories", "over_time"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000 and (tmp_path / f"{name}.svg").exists()
