"""Tables from fit artefacts: columns, metrics as rows, CIs, p-values, nested layer choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurofit.cli import stage_ceiling, stage_tables
from neurofit.encoding.fit import fit_metric, normalise
from neurofit.encoding.settings import EncodingSettings
from neurofit.report.columns import normalisation_method, significant_pairs
from neurofit.report.comparisons import (
    COMPARISON_COLUMNS,
    bootstrap_p_value,
    comparison_table,
    holm,
    sign_flip_p_value,
)
from neurofit.report.tables import (
    COLUMNS,
    EXTRA,
    best_layer_table,
    load_fits,
    predictivity_table,
    summarise,
)


def fake_fit(train, test, metric="ridge"):
    n_splits = len(train)
    draws = np.tile(np.asarray(test, dtype=float), (50, 1)) + np.random.default_rng(0).normal(0, 0.01, (50, n_splits))
    return xr.Dataset({"train_score": ("split", np.asarray(train, float)),
                       "test_score": ("split", np.asarray(test, float)),
                       "boot_both": (("boot", "split"), draws), "null": (("permutation", "split"), draws * 0)},
                      attrs={"metric": metric, "n_neuroids": 4, "n_stimuli": 50})


def test_best_layer_is_chosen_on_training_scores_only(tmp_path):
    # layer "a" looks best on the training stimuli, "b" on the test stimuli: the table must take "a"
    layers = {"a": fake_fit([0.9, 0.9, 0.1], [0.2, 0.2, 0.2]), "b": fake_fit([0.5, 0.5, 0.5], [0.8, 0.8, 0.8]),
              "c": fake_fit([0.1, 0.1, 0.9], [0.3, 0.3, 0.3])}
    fits = []
    for name, ds in layers.items():
        ds.to_netcdf(tmp_path / f"{name}.nc", engine="h5netcdf")
        fits.append(({"dataset": "d", "model": "m", "layer": name, "region": "IT"}, tmp_path / f"{name}.nc"))
    table = best_layer_table(fits, {"d": {"ridge": {"IT": 1.0}}}, "none")
    row = table.iloc[0]
    assert row["layer"] == "a" and row["layer_choices"] == "a,a,c"
    assert row["raw"] == pytest.approx((0.2 + 0.2 + 0.3) / 3)
    assert row["ci_low"] < row["raw"] < row["ci_high"] and row["p_value"] == pytest.approx(1 / 51)



def test_tables_of_fits_read_once_equal_those_of_their_files(tmp_path):
    """The tables stage reads each fit file once (load_fits) for both of its tables and the comparisons:
    the same tables, to the byte, as from the paths."""
    fits = []
    for model, shift in (("m", 0.0), ("n", 0.1)):
        for layer, (train, test) in {"a": ([0.9, 0.2, 0.4], [0.3, 0.2, 0.5]),
                                     "b": ([0.5, 0.6, 0.1], [0.6, 0.7, 0.2])}.items():
            path = tmp_path / f"{model}_{layer}.nc"
            fake_fit(train, np.add(test, shift)).to_netcdf(path, engine="h5netcdf")
            fits.append(({"dataset": "d", "model": model, "layer": layer, "region": "IT"}, path))
    loaded = load_fits(fits)
    assert [key for key, _ in loaded] == [key for key, _ in fits]
    assert all(isinstance(fit, xr.Dataset) for _, fit in loaded)
    ceilings = {"d": {"ridge": {"IT": 0.8}}}
    for table in (predictivity_table, best_layer_table, comparison_table):
        assert table(loaded, ceilings, "r^2/c").to_csv() == table(fits, ceilings, "r^2/c").to_csv()

def test_sem_and_bootstrap_summaries():
    per_split = np.array([0.4, 0.5, 0.6])
    sem = summarise(per_split, None, None, 0.8, "r/c", "sem")
    assert sem["ci_low"] == pytest.approx((0.5 - 1.96 * 0.1 / np.sqrt(3)) / 0.8)
    assert np.isnan(sem["p_value"]) and sem["ci_method"].startswith("sem")
    boot = np.linspace(0.3, 0.7, 1001)[:, None] * np.ones((1, 3))
    out = summarise(per_split, boot, None, 0.8, "(r/c)^2", "bootstrap_both")
    assert out["ci_low"] == pytest.approx((0.31 / 0.8) ** 2) and out["ci_high"] == pytest.approx((0.69 / 0.8) ** 2)
    with pytest.raises(ValueError, match="unknown ci method"):
        summarise(per_split, boot, None, 0.8, "r/c", "jackknife")


def test_pipeline_stages_write_every_metric_into_one_table(tmp_path):
    rng = np.random.default_rng(0)
    n, reps, t = 60, 4, 6
    ids = np.array([f"im{i:03d}" for i in range(n)])
    truth = rng.normal(size=(n, 2 * t))
    raw = truth[None] + rng.normal(size=(reps, n, 2 * t))
    responses = xr.DataArray(raw.reshape(reps * n, 2 * t), dims=("presentation", "neuroid"), coords={
        "stimulus_id": ("presentation", np.tile(ids, reps)), "repeat": ("presentation", np.repeat(np.arange(reps), n)),
        "region": ("neuroid", ["V1"] * t + ["IT"] * t), "unit_id": ("neuroid", np.arange(2 * t))})
    responses.to_netcdf(tmp_path / "responses.nc", engine="h5netcdf")
    stage_ceiling(str(tmp_path / "responses.nc"), {"n_splits": 5}, str(tmp_path / "ceiling.nc"))
    mean = responses.groupby("stimulus_id").mean("presentation").rename({"stimulus_id": "stimulus"})
    mean = mean.assign_coords(stimulus_id=("stimulus", mean["stimulus"].values)).drop_vars("stimulus")
    fits = []
    for layer, weight in (("early", 0.1), ("late", 1.0)):
        x = np.hstack([weight * truth, rng.normal(size=(n, 30))])
        features = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
        for metric in ("ridge", "pls", "rsa", "cka"):
            for region in ("V1", "IT"):
                path = tmp_path / f"{metric}-{layer}-{region}.nc"
                settings = EncodingSettings.from_config({"splits": {"n_splits": 4}, "bootstrap": {"n": 50},
                                                         "permutations": {"n": 50}, "pls_components": 5})
                fit_metric(metric, features, mean.isel(neuroid=mean["region"].values == region),
                           settings).to_netcdf(path, engine="h5netcdf")
                fits.append({"dataset": "sim", "metric": metric, "model": "m", "layer": layer, "region": region,
                             "path": str(path)})
    out = {name: str(tmp_path / f"{name}.csv") for name in ("csv_out", "best_out")}
    stage_tables(fits, {"sim": str(tmp_path / "ceiling.nc")}, {"normalisation": "r^2/c", "ci": "bootstrap_stimuli"},
                 parquet_out=str(tmp_path / "p.parquet"), **out)
    table = pd.read_csv(out["csv_out"])
    assert list(table.columns) == COLUMNS + EXTRA
    assert set(table["metric"]) == {"ridge", "pls", "rsa", "cka"} and len(table) == 16
    assert table["ci_method"].str.startswith("bootstrap_stimuli").all()
    assert (table["ceiling"] > 0).all() and table["p_value"].between(0, 1).all()
    late = table[table["layer"] == "late"].set_index(["metric", "region"])["raw"]
    early = table[table["layer"] == "early"].set_index(["metric", "region"])["raw"]
    assert (late > early).all()
    best = pd.read_csv(out["best_out"])
    assert list(best.columns)[: len(COLUMNS)] == COLUMNS and (best["layer"] == "late").all()


def test_tables_name_the_features_form_and_reduction_each_fit_read(tmp_path):
    """A Gram-only layer and a randomly projected one are told apart in the table (the fit copies
    the features' ``reduce`` attribute; older fits without it read as an unreduced matrix)."""
    rng = np.random.default_rng(1)
    n, t = 40, 3
    ids = np.array([f"im{i:03d}" for i in range(n)])
    x = rng.normal(size=(n, 20))
    responses = xr.DataArray(x[:, :t] + 0.1 * rng.normal(size=(n, t)), dims=("stimulus", "neuroid"),
                             coords={"stimulus_id": ("stimulus", ids), "region": ("neuroid", ["IT"] * t)})
    projected = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)},
                             attrs={"reduce": "sparse_random", "original_features": 5000})
    gram = xr.Dataset({"gram": (("stimulus", "stimulus_b"), x @ x.T), "row_mean": ("stimulus", x.mean(1))},
                      coords={"stimulus_id": ("stimulus", ids)}, attrs={"n_features": 20, "reduce": "gram"})
    fits = []
    for layer, features in (("projected", projected), ("gram", gram), ("old", projected.copy(data=x))):
        fit = fit_metric("ridge", features, responses, EncodingSettings.from_config(
            {"splits": {"n_splits": 3}, "bootstrap": {"n": 10}, "permutations": {"n": 10}}))
        if layer == "old":
            fit.attrs = {k: v for k, v in fit.attrs.items() if k not in ("reduce", "features_form")}
        fit.to_netcdf(tmp_path / f"{layer}.nc", engine="h5netcdf")
        fits.append(({"dataset": "d", "model": "m", "layer": layer, "region": "IT"}, tmp_path / f"{layer}.nc"))
    table = predictivity_table(fits, {"d": {"ridge": {"IT": 1.0}}}, "none").set_index("layer")
    assert table.loc["projected", ["features_form", "reduce"]].tolist() == ["matrix", "sparse_random"]
    assert table.loc["gram", ["features_form", "reduce"]].tolist() == ["gram", "gram"]
    assert table.loc["old", ["features_form", "reduce"]].tolist() == ["matrix", "none"]
    assert table.loc["gram", "raw"] == pytest.approx(table.loc["projected", "raw"], abs=1e-8)


@pytest.mark.parametrize("metric", ["ridge", "rsa"])
def test_fit_stage_reads_files_stratifies_and_records_settings(tmp_path, metric):
    from neurofit.cli import stage_fit

    rng = np.random.default_rng(1)
    n, reps, t = 40, 3, 5
    ids = np.array([f"im{i:03d}" for i in range(n)])
    category = np.array(["cat", "dog"] * (n // 2))
    x = rng.normal(size=(n, 20))
    raw = (x[:, :t] + rng.normal(size=(reps, n, t))).reshape(reps * n, t)
    xr.DataArray(raw, dims=("presentation", "neuroid"), coords={
        "stimulus_id": ("presentation", np.tile(ids, reps)), "repeat": ("presentation", np.repeat(np.arange(reps), n)),
        "category": ("presentation", np.tile(category, reps)),
        "region": ("neuroid", ["IT"] * t), "unit_id": ("neuroid", np.arange(t))}).to_netcdf(
        tmp_path / "responses.nc", engine="h5netcdf")
    xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)}).to_netcdf(
        tmp_path / "features.nc", engine="h5netcdf")
    settings = {"splits": {"n_splits": 4, "seed": 3}, "bootstrap": {"n": 20, "seed": 5}, "permutations": {"n": 20},
                "backend": "numpy"}
    stage_fit(str(tmp_path / "features.nc"), str(tmp_path / "responses.nc"), ["IT"], metric, settings,
              [str(tmp_path / "fit.nc")])
    fit = xr.load_dataset(tmp_path / "fit.nc", engine="h5netcdf")
    assert fit.attrs["stratify_coord"] == "category" and fit.attrs["seed"] == 3 and fit.attrs["resample_seed"] == 5
    assert fit.sizes["split"] == 4 and np.isfinite(fit["test_score"]).all()
    assert fit["train_score"].mean() > 0.15  # 4 test stimuli are too few to assert on a single split's RSA
    with pytest.raises(ValueError, match=r"no neuroids in region\(s\) \['V4'\]"):
        stage_fit(str(tmp_path / "features.nc"), str(tmp_path / "responses.nc"), ["V4"], metric, settings,
                  [str(tmp_path / "fit2.nc")])


# -- sign-safe normalisation (issue 12, item 1) ------------------------------------------------------------
@pytest.mark.parametrize(("method", "expected"), [("r^2/c", -(0.048**2) / 0.2), ("(r/c)^2", -((0.048 / 0.2) ** 2)),
                                                  ("r/c", -0.048 / 0.2), ("none", -0.048)])
def test_a_negative_correlation_keeps_its_sign(method, expected):
    # an untrained layer with r = -0.048 scored +0.0115 under r^2/c before: a negative r must stay negative
    assert normalise(-0.048, 0.2, method) == pytest.approx(expected)
    assert normalise(0.048, 0.2, method) == pytest.approx(abs(expected))
    assert np.all(np.diff(normalise(np.linspace(-0.5, 0.5, 11), 0.2, method)) > 0)  # monotone in r


@pytest.mark.parametrize("ci_method", ["sem", "bootstrap_both"])
def test_the_ci_of_a_negative_score_stays_below_zero_and_names_its_convention(ci_method):
    per_split = np.array([-0.06, -0.04, -0.05, -0.045])
    boot = per_split[None] + np.random.default_rng(0).normal(0, 0.005, (200, 4))
    out = summarise(per_split, boot, None, 0.2, "r^2/c", ci_method)
    assert out["score"] == pytest.approx(-(0.04875**2) / 0.2)
    assert out["ci_low"] < out["score"] < out["ci_high"] < 0
    assert out["normalisation"] == "sign(r)*r^2/c"
    assert summarise(per_split, boot, None, 0.2, "(r/c)^2", ci_method)["normalisation"] == "sign(r)*(r/c)^2"
    assert normalisation_method("sign(r)*r^2/c") == normalisation_method("r^2/c") == "r^2/c"


# -- paired comparisons (issue 12, item 9) ----------------------------------------------------------------
def _region(seed=0, n=60, t=12):
    rng = np.random.default_rng(seed)
    ids = np.array([f"im{i:03d}" for i in range(n)])
    truth = rng.normal(size=(n, 8))
    y = truth @ rng.normal(size=(8, t)) + 0.8 * rng.normal(size=(n, t))
    responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={
        "stimulus_id": ("stimulus", ids), "region": ("neuroid", ["IT"] * t), "unit_id": ("neuroid", np.arange(t))})
    return ids, truth, responses, rng


def _write_fits(tmp_path, models, responses, ids, metric="ridge", **fit_kwargs):
    fits = []
    for model, x in models.items():
        features = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
        path = tmp_path / f"{model}-{metric}.nc"
        given = fit_kwargs.get(model, {})  # (a fit's own bootstrap options)
        settings = EncodingSettings.from_config({"splits": {"n_splits": 4, "train_size": 0.6},
                                                 "bootstrap": {"n": 200, **given.get("bootstrap", {})},
                                                 "permutations": {"n": 300},
                                                 **{k: v for k, v in given.items() if k != "bootstrap"}})
        fit_metric(metric, features, responses, settings).to_netcdf(path, engine="h5netcdf")
        fits.append(({"dataset": "sim", "model": model, "layer": "fc", "region": "IT"}, path))
    return fits


@pytest.mark.parametrize("metric", ["ridge", "rsa"])
def test_comparisons_find_the_better_model_on_paired_draws(tmp_path, metric):
    ids, truth, responses, rng = _region()
    models = {"good": np.hstack([truth, 0.3 * rng.normal(size=(60, 10))]),
              "same": None, "noise": rng.normal(size=(60, 18))}
    models["same"] = models["good"].copy()  # the same features: identical scores on identical draws
    fits = _write_fits(tmp_path, models, responses, ids, metric)
    table = comparison_table(fits, {"sim": {metric: {"IT": 0.8}}}, "r^2/c")
    assert list(table.columns) == COMPARISON_COLUMNS and len(table) == 3
    row = table.set_index(["model_a", "model_b"])
    better = row.loc[("good", "noise")]
    assert better["difference"] > 0 and 0 < better["ci_low"] < better["ci_high"]
    if metric == "ridge":  # (RSA's bootstrap of 24 stimuli is biased low: the estimate can lie above its CI)
        assert better["ci_low"] < better["difference"] < better["ci_high"]
    assert better["p_value"] < 0.05 and better["significant"] and better["p_holm"] >= better["p_value"]
    tie = row.loc[("good", "same")]
    # paired draws: the difference of two identical models is exactly 0 in every draw
    assert tie["difference"] == 0 and tie["ci_low"] == 0 and tie["ci_high"] == 0
    assert tie["p_value"] == 1 and not tie["significant"]
    assert (table["layer_a"] == "fc").all() and (table["normalisation"] == "sign(r)*r^2/c").all()
    expected = "permutation" if metric == "ridge" else "paired bootstrap"
    assert table["test"].str.startswith(expected).all()
    summary = significant_pairs(table, "IT")
    assert set(zip(summary["better"], summary["worse"], strict=True)) == {("good", "noise"), ("same", "noise")}


def test_paired_draws_are_tighter_than_unpaired_ones(tmp_path):
    # two nearly equal models: their CIs overlap, yet the paired difference has a narrow CI of its own
    ids, truth, responses, rng = _region(seed=2)
    base = np.hstack([truth, 0.5 * rng.normal(size=(60, 10))])
    fits = _write_fits(tmp_path, {"a": base, "b": base + 0.2 * rng.normal(size=base.shape)}, responses, ids)
    table = comparison_table(fits, {"sim": {"ridge": {"IT": 0.8}}}, "r/c")
    best = best_layer_table(fits, {"sim": {"ridge": {"IT": 0.8}}}, "r/c").set_index("model")
    paired_width = float(table["ci_high"].iloc[0] - table["ci_low"].iloc[0])
    unpaired_width = float((best["ci_high"] - best["ci_low"]).sum())
    assert paired_width < unpaired_width / 2


def test_comparisons_refuse_fits_with_different_resamples(tmp_path):
    ids, truth, responses, rng = _region()
    fits = _write_fits(tmp_path, {"a": truth, "b": rng.normal(size=(60, 8))}, responses, ids,
                       b={"bootstrap": {"seed": 3}})
    with pytest.raises(ValueError, match="resample_seed: 0 vs 3"):
        comparison_table(fits, {"sim": {"ridge": {"IT": 0.8}}}, "r^2/c")


def test_sign_flip_p_value_and_holm():
    r_a = np.tile(np.linspace(0.5, 0.6, 8), (3, 1))
    r_b = r_a - 0.2
    # 2**8 = 256 patterns, all enumerated: only "no swap" and "swap all" are as extreme as the data
    assert sign_flip_p_value(r_a, r_b, 1000) == (pytest.approx(2 / 256), 256)
    p, n = sign_flip_p_value(np.tile(np.linspace(0.5, 0.6, 30), (3, 1)), np.tile(np.linspace(0.5, 0.6, 30), (3, 1)) -
                             0.2, 500)
    assert n == 500 and p == pytest.approx(1 / 501)
    assert sign_flip_p_value(r_a, r_a, 100)[0] == 1
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert bootstrap_p_value(np.linspace(0.1, 1, 99)) == pytest.approx(2 / 100)


def test_comparisons_stage_writes_the_table(tmp_path):
    from neurofit.cli import stage_comparisons

    ids, truth, responses, rng = _region()
    fits = _write_fits(tmp_path, {"good": truth, "noise": rng.normal(size=(60, 8))}, responses, ids)
    ceiling = tmp_path / "ceiling.nc"
    xr.Dataset({"reliability": (("split", "neuroid"), np.full((3, 12), 0.8))},
               coords={"region": ("neuroid", ["IT"] * 12)}).to_netcdf(ceiling, engine="h5netcdf")
    out = tmp_path / "tables" / "comparisons.csv"
    stage_comparisons([{**key, "metric": "ridge", "path": str(path)} for key, path in fits], {"sim": str(ceiling)},
                      {"normalisation": "(r/c)^2"}, str(out))
    table = pd.read_csv(out)
    assert list(table.columns) == COMPARISON_COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row["model_a"], row["model_b"]) == ("good", "noise") and row["significant"]
    assert row["normalisation"] == "sign(r)*(r/c)^2" and row["n_permutations"] == 300
