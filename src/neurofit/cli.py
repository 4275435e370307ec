"""``neurofit <command>``: the one entry that rules and people call; the only place stages meet.

Each pipeline stage is a function here taking file paths and plain settings; the Snakemake rules
call them through the one script ``workflow/scripts/stage.py`` with the stage's name as the rule's
``stage`` param (:func:`run_from_snakemake`), people through :func:`main`. Each stage builds its
typed settings (``EncodingSettings``, ``FeatureSettings``, ...) once from the rule's config params.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("neurofit")


# -- stages ---------------------------------------------------------------------------------------
def stage_simulate(out_dir: str, settings: dict[str, Any]) -> None:
    from neurofit.simulate import SimulationSpec, simulate

    truth = simulate(SimulationSpec.from_config(settings), out_dir)
    log.info("simulated dandiset in %s; region -> layer %s", out_dir, truth["region_layer"])


def stage_manifest(dataset: dict[str, Any], out: str, local_root: str | None = None, cache: str | None = None,
                   name: str = "dataset") -> None:
    from neurofit.data.local import local_manifest, write_manifest

    if dataset["source"] == "dandi":
        _manifest_from_dandi(dataset, out, cache or "resources", name)
        return
    root = local_root or dataset.get("path")
    if dataset["source"] not in ("local", "simulated"):
        raise ValueError(f"source {dataset['source']!r} is not supported by the manifest stage")
    manifest = local_manifest(root, dataset.get("assets"))
    manifest["source"] = dataset["source"]
    write_manifest(manifest, out)
    log.info("manifest: %d NWB file(s) from %s", len(manifest["assets"]), root)


def _manifest_from_dandi(dataset: dict[str, Any], out: str, cache: str, name: str) -> None:
    """A ``source: dandi`` dataset: resolved once, downloaded and verified into ``cache`` (or streamed)."""
    from neurofit.data.dandi import DandiSpec, acquire
    from neurofit.data.local import write_manifest

    manifest = acquire(DandiSpec.from_config(name, dataset), cache)
    write_manifest(manifest, out)
    log.info("manifest: %d NWB file(s) of dandiset %s/%s (%s)", len(manifest["assets"]), manifest["dandiset"],
             manifest["version"], "streamed" if manifest["stream"] else manifest["root"])


def stage_responses(manifest_path: str, settings: dict[str, Any], regions: list[str], responses_out: str,
                    binned_out: str, summary_out: str) -> None:
    from neurofit.data.assets import asset_source
    from neurofit.data.local import read_manifest
    from neurofit.neural.responses import ResponseSpec, build_responses

    manifest = read_manifest(manifest_path)
    spec = ResponseSpec.from_config({**settings, "regions": regions})
    # The pipeline always computes noise ceilings, so too few repeats fails here, naming the files.
    result = build_responses([asset_source(asset) for asset in manifest["assets"]], spec, ceiling=True)
    for path in (responses_out, binned_out, summary_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    result.responses.to_netcdf(responses_out, engine="h5netcdf")
    result.binned.to_netcdf(binned_out, engine="h5netcdf")
    Path(summary_out).write_text(json.dumps(result.summary, indent=2, default=str))
    log.info("responses %s from %d file(s); %d stimuli; neuroids per region %s", dict(result.responses.sizes),
             len(manifest["assets"]), result.stimuli.sizes["stimulus"], result.summary["neuroids_per_region"])
    for record in result.summary["filters"]:
        log.info("filter %s %s: kept %d, dropped %d", record["filter"], record["setting"], record["kept"],
                 record["dropped"])


def stage_stimuli(manifest_path: str, settings: dict[str, Any], out: str) -> None:
    """The stimulus images alone (their own job, so the features do not rerun when only the responses change)."""
    from neurofit.data.assets import asset_source
    from neurofit.data.local import read_manifest
    from neurofit.neural.responses import ResponseSpec, build_stimuli
    from neurofit.neural.stimuli import stimulus_settings

    manifest = read_manifest(manifest_path)
    stimuli = build_stimuli([asset_source(asset) for asset in manifest["assets"]],
                            ResponseSpec.from_config(stimulus_settings(settings)))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    stimuli.to_netcdf(out, engine="h5netcdf")
    log.info("stimuli %s from %d file(s)", dict(stimuli.sizes), len(manifest["assets"]))


def stage_ceiling(responses_path: str, settings: dict[str, Any], out: str) -> None:
    import xarray as xr

    from neurofit.encoding.ceiling import split_half_ceiling, split_half_similarity
    from neurofit.encoding.settings import CeilingSettings

    ceiling = CeilingSettings.from_config(settings)
    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    counts = responses.values.astype(np.float64)
    args = (counts, responses["stimulus_id"].values, responses["repeat"].values)
    n_splits, seed = ceiling.n_splits, ceiling.seed
    reliability = split_half_ceiling(*args, n_splits, seed)
    similarity = split_half_similarity(*args, responses["region"].values, n_splits, seed)
    regions = list(similarity["rsa"])
    ds = xr.Dataset({"reliability": (("split", "neuroid"), reliability),
                     **{f"{m}_reliability": (("region_name", "split"), np.stack([similarity[m][r] for r in regions]))
                        for m in ("rsa", "cka")}},
                    coords={"region": ("neuroid", responses["region"].values),
                            "unit_id": ("neuroid", responses["unit_id"].values),
                            "region_name": ("region_name", np.asarray(regions, dtype=str))},
                    attrs={"method": "split-half over repeats (ShuffleSplit train_size=0.5), Spearman-Brown corrected: "
                                     "Pearson per neuroid (ridge, pls, factorised), Spearman of RDMs (rsa), "
                                     "debiased CKA (cka)",
                           "n_splits": n_splits, "seed": seed})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out, engine="h5netcdf")


def stage_train(settings: dict[str, Any], weights_out: str | None = None, performance_out: str | None = None,
                weights_in: str | None = None, checkpoint: str | None = None, epochs_out: str | None = None,
                model: str = "model") -> None:
    from neurofit.models.catalog import is_named_network
    from neurofit.models.train import ModelSpec, evaluate_loaded, train_checkpoints, train_model

    if is_named_network(settings):
        _prepare_named(model, settings, weights_out, performance_out)
        return
    spec = ModelSpec.from_config(settings)
    if epochs_out:  # one run scored at several epochs (model variants <model>_e<epoch>)
        scores = train_checkpoints(spec, epochs_out, checkpoint)
        log.info("model %s: held-out performance by epoch %s", spec.architecture,
                 {e: p["performance"] for e, p in scores.items()})
        return
    assert weights_out and performance_out
    if weights_in:
        perf = evaluate_loaded(spec, weights_in, weights_out, performance_out)
    else:
        perf = train_model(spec, weights_out, performance_out, checkpoint)
    log.info("model %s: %s", spec.architecture, {k: v for k, v in perf.items() if k != "train_loss"})


def stage_checkpoint_variant(epochs_dir: str, epoch: str, weights_out: str, performance_out: str) -> None:
    from neurofit.models.train import export_checkpoint

    export_checkpoint(epochs_dir, int(epoch), weights_out, performance_out)


def _prepare_named(model: str, settings: dict[str, Any], weights_out: str, performance_out: str) -> None:
    """A named network (torchvision/timm/transformers/module): weights fetched or loaded once, copied
    into the pipeline, and its provenance (weights identity and digest, input) as performance.json."""
    from neurofit.models.weights import save_weights
    from neurofit.models.zoo import NamedNetwork, prepare

    prepared = prepare(NamedNetwork.from_config(model, settings))
    save_weights(prepared.model, weights_out)
    record = {**prepared.record, "architecture": f"{settings['source']}:{settings['network']}",
              "objective": f"{prepared.record['weights_kind']} weights", "learning_rule": None, "task": None,
              "performance": None, "performance_metric": None}
    Path(performance_out).write_text(json.dumps(record, indent=2, default=str))
    log.info("model %s: %s %s, weights %s, %d parameters, input %s", model, settings["source"], settings["network"],
             settings["weights"], record["n_parameters"], record["input"])


def _features_named(model: str, settings: dict[str, Any], weights: str, stimuli_path: str, layer: str, out: str,
                    record_path: str) -> None:
    import xarray as xr

    from neurofit.feature_settings import FeatureSettings
    from neurofit.features import extract_layer, preprocess_named, save_features
    from neurofit.models.weights import load_weights
    from neurofit.models.zoo import NamedNetwork, check_layers, rebuild

    net = NamedNetwork.from_config(model, settings)
    options = FeatureSettings.from_config(settings.get("features"), f"models.{model}.features")
    record = json.loads(Path(record_path).read_text())
    network = load_weights(rebuild(net, record), weights)
    check_layers(network, [layer], net.key("layers"))
    stimuli = xr.load_dataarray(stimuli_path, engine="h5netcdf")
    features = extract_layer(network, layer, stimuli, preprocess_named(record["input"], options.preprocessing()),
                             batch_size=options.batch(named=True), reduce=options.reduce, max_dims=options.max_dims,
                             seed=net.seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    identity = record.get("weights_identity", {})
    save_features(features, out, architecture=f"{net.source}:{net.network}", objective=f"{net.kind} weights",
                  learning_rule="none", weights=net.weights, weights_sha256=identity.get("sha256", ""))


def stage_features(settings: dict[str, Any], weights: str, stimuli_path: str, layer: str, out: str,
                   model: str = "model", record: str | None = None) -> None:
    import xarray as xr

    from neurofit.feature_settings import FeatureSettings
    from neurofit.features import extract_layer, preprocess_for, read_image_set, save_features
    from neurofit.models.catalog import is_named_network
    from neurofit.models.train import ModelSpec
    from neurofit.models.weights import load_weights

    if is_named_network(settings):
        if record is None:
            raise ValueError(f"models.{model}: a named network's features need its prepared record (performance.json)")
        _features_named(model, settings, weights, stimuli_path, layer, out, record)
        return
    spec = ModelSpec.from_config(settings)
    options = FeatureSettings.from_config(spec.features, f"models.{model}.features")
    network = load_weights(spec.build(), weights)
    stimuli = xr.load_dataarray(stimuli_path, engine="h5netcdf")
    prep = preprocess_for(spec.architecture, spec.image_size, options.preprocessing())
    features = extract_layer(network, layer, stimuli, prep, batch_size=options.batch(named=False),
                             reduce=options.reduce, max_dims=options.max_dims, seed=spec.seed,
                             fit_images=read_image_set(options.pca_images) if options.pca_images else None,
                             fit_images_name=options.pca_images or "", spill_dir=options.spill_dir)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_features(features, out, architecture=spec.architecture, objective=spec.objective,
                  learning_rule=spec.learning_rule)


def stage_fit(features_path: str, responses_path: str, regions: list[str], metric: str, settings: dict[str, Any],
              out: list[str]) -> None:
    """One layer against every region of a dataset: the features are read once and what does not depend
    on the responses (Gram matrix, eigendecompositions, the model's RDMs) is shared; ``out[i]`` gets
    ``regions[i]``'s fit, exactly as a fit of that region alone."""
    import xarray as xr

    from neurofit.encoding.fit import fit_groups, stimulus_labels
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.settings import EncodingSettings
    from neurofit.neural.repeats import average_repeats

    spec = EncodingSettings.from_config(settings)
    if len(out) != len(regions):
        raise ValueError(f"stage_fit: {len(regions)} regions but {len(out)} output files")
    features = LayerFeatures.from_xarray(xr.load_dataset(features_path, engine="h5netcdf"), source=features_path)
    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    region_of = responses["region"].values.astype(str)
    missing = [r for r in regions if not np.any(region_of == r)]
    if missing:
        raise ValueError(f"{responses_path}: no neuroids in region(s) {missing}; regions there: "
                         f"{sorted(set(region_of))}")
    stratify = stimulus_labels(responses, list(spec.splits.stratify_coords))
    fits = fit_groups(metric, features, average_repeats(responses), {r: region_of == r for r in regions}, spec,
                      stratify=stratify)
    for region, path in zip(regions, out, strict=True):
        fit = fits[region]
        log.info("%s %s: mean test score %.3f over %d splits", metric, region, float(fit["test_score"].mean()),
                 fit.sizes["split"])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fit.to_netcdf(path, engine="h5netcdf")


def _ceilings_by_dataset(ceilings: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    import xarray as xr

    from neurofit.report.tables import ceiling_by_region

    by_dataset = {}
    for name, path in ceilings.items():
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            by_dataset[name] = ceiling_by_region(ds.load())
    return by_dataset


def stage_tables(fits: list[dict[str, str]], ceilings: dict[str, str], settings: dict[str, Any], csv_out: str,
                 parquet_out: str, best_out: str) -> None:
    from neurofit.report.settings import ReportSettings
    from neurofit.report.tables import best_layer_table, load_fits, predictivity_table, write_table

    report = ReportSettings.from_config(settings)
    by_dataset = _ceilings_by_dataset(ceilings)
    keyed = load_fits((fit, fit["path"]) for fit in fits)  # read once for both tables
    write_table(predictivity_table(keyed, by_dataset, report.normalisation, report.ci), csv_out, parquet_out)
    write_table(best_layer_table(keyed, by_dataset, report.normalisation, report.ci), best_out)


def stage_comparisons(fits: list[dict[str, str]], ceilings: dict[str, str], settings: dict[str, Any],
                      csv_out: str) -> None:
    from neurofit.report.comparisons import comparison_table
    from neurofit.report.settings import ReportSettings
    from neurofit.report.tables import write_table

    report = ReportSettings.from_config(settings)
    table = comparison_table([(fit, fit["path"]) for fit in fits], _ceilings_by_dataset(ceilings),
                             report.normalisation, report.ci)
    write_table(table, csv_out)
    log.info("%d model pairs compared, %d significant (Holm p < 0.05)", len(table), int(table["significant"].sum()))


def _best_layers(best_path: str, metric: str) -> pd.DataFrame:
    """The ``best_layer`` table's rows of one metric (the figures show one)."""
    import pandas as pd

    best = pd.read_csv(best_path)
    return best[best["metric"] == metric]


def _comparisons(comparisons_path: str, metric: str) -> pd.DataFrame:
    """The ``comparisons`` table's rows of one metric."""
    import pandas as pd

    table = pd.read_csv(comparisons_path)
    return table[table["metric"] == metric]


def stage_figures(table_path: str, best_path: str, comparisons_path: str, metric: str,
                  layer_orders: dict[str, list[str]], region_order: list[str], heatmap_paths: dict[str, list[str]],
                  best_layer: list[str]) -> None:
    import pandas as pd

    from neurofit.report.figures import best_layer_figure, layer_region_heatmap

    table = pd.read_csv(table_path)
    table = table[table["metric"] == metric]
    best = _best_layers(best_path, metric)
    comparisons = _comparisons(comparisons_path, metric)
    for model, paths in heatmap_paths.items():
        layer_region_heatmap(table, model, layer_orders[model], region_order, paths, best, comparisons)
    best_layer_figure(best, layer_orders, region_order, best_layer)


def stage_figure_performance(best_path: str, comparisons_path: str, metric: str, performance: dict[str, str],
                             models: dict[str, dict[str, Any]], region_order: list[str], figure: list[str],
                             correlations_out: str) -> None:
    from neurofit.report.figures import performance_vs_predictivity

    perf = {model: json.loads(Path(path).read_text()) for model, path in performance.items()}
    correlations = performance_vs_predictivity(_best_layers(best_path, metric), perf, region_order, figure,
                                               models=models, comparisons=_comparisons(comparisons_path, metric))
    correlations.insert(0, "metric", metric)
    Path(correlations_out).parent.mkdir(parents=True, exist_ok=True)
    correlations.to_csv(correlations_out, index=False)


def stage_figure_neuroids(best_path: str, fits: list[dict[str, str]], ceiling_path: str, dataset: str, metric: str,
                          normalisation: str, region_order: list[str], figure: list[str]) -> None:
    from neurofit.report.figures import chosen_layer_scores, neuroid_ceilings, neuroid_scores_figure

    per_neuroid, layers = chosen_layer_scores(_best_layers(best_path, metric), fits, dataset, metric)
    neuroid_scores_figure(per_neuroid, neuroid_ceilings(ceiling_path), layers, region_order, normalisation,
                          f"{dataset}, {metric}: per-neuroid scores at the layer chosen on training stimuli",
                          figure)


def stage_figure_learning_rules(best_path: str, metric: str, models: dict[str, dict[str, Any]],
                                performance: dict[str, str], region_order: list[str], figure: list[str]) -> None:
    from neurofit.report.figures import learning_rule_figure

    perf = {model: json.loads(Path(path).read_text()) for model, path in performance.items()}
    learning_rule_figure(_best_layers(best_path, metric), models, region_order, figure, perf)


def stage_table_pages(predictivity: str, best_layer: str, predictivity_html: str, best_layer_html: str,
                      comparisons: str | None = None, comparisons_html: str | None = None) -> None:
    from neurofit.report.html import write_table_page

    write_table_page(predictivity, predictivity_html, "Predictivity: every layer")
    write_table_page(best_layer, best_layer_html, "Predictivity: layer chosen on training stimuli")
    if comparisons and comparisons_html:
        write_table_page(comparisons, comparisons_html, "Paired comparisons: which model explains each region better")


def stage_provenance(config: dict[str, Any], software: dict[str, Any], config_out: str, software_json: str,
                     software_html: str) -> None:
    from neurofit.report.provenance import write_config, write_software

    write_config(config, config_out)
    write_software(software, software_json, software_html)


def stage_data_manifest(manifests: dict[str, str], responses: dict[str, str], html_out: str, json_out: str,
                        summaries: dict[str, str] | None = None) -> None:
    import tempfile

    from neurofit.neural.responses import manifest_filter_entries
    from neurofit.report.provenance import write_data_manifest

    # The data page lists what each unit filter dropped (recorded in the responses summary) beside
    # the manifest's own entries.
    with tempfile.TemporaryDirectory() as scratch:
        merged = {}
        for name, path in manifests.items():
            manifest = json.loads(Path(path).read_text())
            if summaries and name in summaries:
                manifest.update(manifest_filter_entries(json.loads(Path(summaries[name]).read_text())))
            merged[name] = str(Path(scratch) / f"{name}.json")
            Path(merged[name]).write_text(json.dumps(manifest))
        write_data_manifest(merged, responses, html_out, json_out)


def stage_models_manifest(performance: dict[str, str], html_out: str, json_out: str) -> None:
    from neurofit.report.models_page import write_models_page

    write_models_page(performance, html_out, json_out)


# -- trial-structured (time-resolved) datasets and recurrent models (workflow/rules/trials.smk) ----------------
def stage_trial_simulate(out_dir: str, settings: dict[str, Any]) -> None:
    from neurofit.simulate_trials import TrialSimulationSpec, simulate_trials

    truth = simulate_trials(TrialSimulationSpec.from_config(settings), out_dir)
    log.info("simulated trial dandiset in %s; region -> layer %s; reference accuracy %.3f", out_dir,
             truth["region_layer"], truth["reference_accuracy"])


def stage_trial_responses(manifest_path: str, settings: dict[str, Any], regions: list[str],
                          ceiling: dict[str, Any], psth_out: str, summary_out: str) -> None:
    from neurofit.data.assets import asset_source
    from neurofit.data.local import read_manifest
    from neurofit.neural.settings import TrialCeilingSettings
    from neurofit.neural.trials import TrialSpec, build_trial_dataset, read_trial_responses

    manifest = read_manifest(manifest_path)
    spec = TrialSpec.from_config({**settings, "regions": regions})
    split_half = TrialCeilingSettings.from_config(ceiling)
    sessions, files = [], []
    for asset in manifest["assets"]:
        responses, record = read_trial_responses(asset_source(asset), spec, session=Path(asset["path"]).stem)
        sessions.append(responses)
        files.append(record)
    dataset, summary = build_trial_dataset(sessions, spec, split_half.n_splits, split_half.seed)
    for path in (psth_out, summary_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    dataset.to_netcdf(psth_out, engine="h5netcdf")
    Path(summary_out).write_text(json.dumps({"files": files, **summary}, indent=2, default=str))
    log.info("trial responses: %s from %d session(s); conditions %s; neuroids per region %s", dict(dataset.sizes),
             len(sessions), summary["conditions"], summary["neuroids_per_region"])


def stage_trial_train(settings: dict[str, Any], weights_out: str, performance_out: str,
                      weights_in: str | None = None) -> None:
    from neurofit.models.train_recurrent import RecurrentSpec, evaluate, load_recurrent, save_recurrent, train_recurrent

    if weights_in:  # the simulator's hidden network: evaluated on held-out trials, not trained again
        net, spec = load_recurrent(weights_in)
        performance = {"task": spec.task, "architecture": spec.architecture, "learning_rule": "reference",
                       **evaluate(net, spec.make_task(), spec.dt_ms, spec.n_test, spec.seed + 1_000_003)}
    else:
        spec = RecurrentSpec.from_config(settings)
        net, performance = train_recurrent(spec)
    save_recurrent(net, spec, performance, weights_out, performance_out)
    log.info("recurrent model %s/%s on %s: held-out accuracy %.3f (chance %.2f)", spec.architecture,
             performance["learning_rule"], spec.task, performance["accuracy"], performance["chance"])


def stage_trial_features(weights: str, psth_path: str, task_map: dict[str, Any], out: str) -> None:
    import xarray as xr

    from neurofit.trial_features import trial_features

    psth = xr.load_dataset(psth_path, engine="h5netcdf")
    window_s = tuple(np.asarray(psth.attrs["window_ms"], dtype=float) / 1000.0)
    features = trial_features(weights, [str(c) for c in psth["condition"].values], json.loads(psth.attrs["epochs"]),
                              window_s, psth["time"].values, task_map)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    features.to_netcdf(out, engine="h5netcdf")


def stage_trial_fit(features_path: str, psth_path: str, settings: dict[str, Any], regions: list[str], dataset: str,
                    model: str, rows_out: str, time_out: str) -> None:
    import pandas as pd
    import xarray as xr

    from neurofit.encoding.settings import TrialEncodingSettings
    from neurofit.encoding.timecourse import geometry, geometry_ceilings, score_region

    spec = TrialEncodingSettings.from_config(settings)
    features = xr.load_dataset(features_path, engine="h5netcdf")
    data = xr.load_dataset(psth_path, engine="h5netcdf")
    alphas = spec.alphas()
    # the neural halves' geometry depends on the region only: once per region, not per layer
    ceilings = {region: geometry_ceilings(data["psth_halves"].values[..., data["region"].values == region]
                                          .astype(np.float64), spec.shape_alpha) for region in regions}
    rows, curves = [], []
    for layer in features.data_vars:
        x = features[layer].sel(condition=data["condition"].values).values
        for region in regions:
            keep = data["region"].values == region
            scores = score_region(x, data["psth"].values[:, :, keep], data["reliability"].values[:, keep], alphas,
                                  spec.n_folds, spec.seed, spec.bootstrap, spec.n_null, spec.normalisation)
            for metric, result in scores.items():
                rows.append({"dataset": dataset, "model": model, "layer": layer, "region": region, "metric": metric,
                             **{k: v for k, v in result.items() if k not in ("r", "r_time")}})
                curves.append(xr.DataArray(result["r_time"], dims="time", coords={"time": data["time"].values})
                              .expand_dims(layer=[layer], region=[region], metric=[metric]))
            for metric, result in geometry(x, data["psth"].values[:, :, keep], spec.seed, ceilings[region],
                                           spec.shape_alpha).items():
                rows.append({"dataset": dataset, "model": model, "layer": layer, "region": region, "metric": metric,
                             **result})
    Path(rows_out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(rows_out, index=False)
    xr.combine_by_coords(curves).rename("r_time").to_netcdf(time_out, engine="h5netcdf")


def stage_trial_tables(fits: list[str], performance: dict[str, str], csv_out: str) -> None:
    import pandas as pd

    table = pd.concat([pd.read_csv(path) for path in fits], ignore_index=True)
    accuracy = {model: json.loads(Path(path).read_text())["accuracy"] for model, path in performance.items()}
    table["task_accuracy"] = table["model"].map(accuracy)
    Path(csv_out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv_out, index=False)
    table.to_parquet(Path(csv_out).with_suffix(".parquet"), index=False)


def stage_trial_figures(psth_path: str, features: dict[str, str], time_curves: dict[str, str], table_path: str,
                        dataset: str, trajectories_out: str, over_time_out: str) -> None:
    from neurofit.report.trial_figures import plot_predictivity_over_time, plot_trajectories

    plot_trajectories(psth_path, features, table_path, dataset, trajectories_out)
    plot_predictivity_over_time(time_curves, table_path, psth_path, dataset, over_time_out)


def stage_trial_report_pages(table_path: str, performance: dict[str, str], predictivity_html: str,
                             networks_html: str) -> None:
    from neurofit.report.trial_pages import write_trial_pages

    write_trial_pages(table_path, performance, predictivity_html, networks_html)


STAGES = {name[len("stage_"):]: fn for name, fn in globals().items() if name.startswith("stage_")}


# Rule params the stage does not take: ``stage`` (which stage the one script, workflow/scripts/stage.py,
# runs) and ``code`` (the stage's code hash, so that Snakemake reruns the rule when it changes).
SNAKEMAKE_ONLY_PARAMS = frozenset({"stage", "code"})


def run_from_snakemake(stage: str, smk: Any) -> None:
    """Entry of ``workflow/scripts/stage.py``: logs to the rule's log file, calls the stage with the rule's
    named inputs, outputs and params as keyword arguments. On failure the traceback goes to the log
    only, the message a person can act on to ``<log>.error`` (printed last by the Snakefile's
    ``onerror``), and the job exits with status 1."""
    from neurofit.paths import error_note

    if stage not in STAGES:
        raise KeyError(f"no stage {stage!r} in neurofit.cli (a rule's `stage` param); stages: {sorted(STAGES)}")
    log_path = smk.log[0] if smk.log else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(error_note(log_path)).unlink(missing_ok=True)  # a note from an earlier failed run is stale
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stage_fn = STAGES[stage]
    # Wildcards and named inputs/outputs the stage does not take are there for Snakemake only; every param but
    # SNAKEMAKE_ONLY_PARAMS must be one the stage takes.
    wanted = inspect.signature(stage_fn).parameters
    unknown = sorted(set(dict(smk.params.items())) - set(wanted) - SNAKEMAKE_ONLY_PARAMS)
    named = {**dict(smk.wildcards.items()), **dict(smk.input.items()), **dict(smk.output.items()),
             **dict(smk.params.items())}
    try:
        if unknown:  # a misspelt or stale param would otherwise be dropped, and the stage run on its defaults
            raise TypeError(f"rule {stage}: params {unknown} are not parameters of stage_{stage} {sorted(wanted)}; "
                            f"rename or remove them in workflow/rules")
        stage_fn(**{k: v for k, v in named.items() if k in wanted})
    except Exception as error:
        if not log_path:
            raise
        _record_failure(stage, error, log_path, [str(f) for f in smk.output], handlers[-1])
        raise SystemExit(1) from None


def spare_shutdown() -> None:
    """The last call of a job's process (``workflow/scripts/stage.py``, after the stage returned): collects
    the stage's garbage now, running its finalizers as any exit would, then moves every object left into
    the permanent generation (:func:`gc.freeze`), so that interpreter shutdown does not trace them all
    again while it tears the modules down. That tracing was 0.5 s of CPU in a job that imported torch and
    0.15 s in one with xarray (65 jobs in the default run); atexit handlers (logging's flush) still run."""
    import gc

    gc.collect()
    gc.freeze()


def _record_failure(stage: str, error: Exception, log_path: str, outputs: list[str], log_file: logging.Handler) -> None:
    """Traceback to the job log (not the screen); the user-facing message beside it, for ``onerror``."""
    import traceback

    from neurofit.errors import user_message
    from neurofit.paths import error_note

    message = user_message(error, outputs)
    record = logging.LogRecord("neurofit", logging.ERROR, __file__, 0, "stage %s failed:\n%s", (
        stage, "".join(traceback.format_exception(error))), None)
    try:
        log_file.handle(record)
        log_file.flush()
    except OSError:
        pass
    if message is None:
        message = (f"stage {stage} failed with an unexpected {type(error).__name__}: {error}\n(this is probably a "
                   f"bug in neurofit; the traceback is in {log_path})")
    try:
        Path(error_note(log_path)).write_text(message + "\n")
    except OSError:  # a full disk can refuse even this: then the screen is the only place left
        print(f"neurofit: stage {stage} failed: {message}", file=sys.stderr, flush=True)


# -- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neurofit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="write the simulated ground-truth dandiset")
    sim.add_argument("out_dir", help="folder to write dandiset/, ground_truth.json, reference_model.pt into")
    sim.add_argument("--settings", default="{}", help="JSON object of simulator settings")
    look = commands.add_parser("inspect", help="what an NWB file (or DANDI URL) holds, and a config snippet for it")
    look.add_argument("source", help="an NWB file, or a DANDI URL (dandiset, asset path or asset download URL)")
    look.add_argument("--asset", help="for a DANDI URL naming several NWB assets: the asset path to inspect")
    look.add_argument("--json", action="store_true", help="print the description as JSON")
    look.add_argument("--api-url", help="the DANDI API of a server other than dandiarchive.org, e.g. "
                                        "https://api.sandbox.dandiarchive.org/api (as a dataset's api_url)")
    check = commands.add_parser("check", help="check a config file: YAML syntax (with the line), schema, names")
    check.add_argument("configfile", help="a config file, e.g. config/paper/figure2.yaml")
    check.add_argument("--debug", action="store_true", help="show the traceback of an error")
    lay = commands.add_parser("layers", help="every layer of a model, with its output shape for one image")
    lay.add_argument("config", nargs="?", help="a config YAML (with MODEL), or omit and give --entry")
    lay.add_argument("model", nargs="?", help="the model's name under `models:` in the config")
    lay.add_argument("--entry", help='a model entry as JSON, e.g. {"source": "transformers", "network": "ViTConfig"}')
    lay.add_argument("--match", action="append", help="only layers matching this name or pattern (repeatable)")
    lay.add_argument("--json", action="store_true", help="print the layers as JSON")
    for sub in (sim, look, lay):
        sub.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return _command(parser, args)
    except Exception as error:
        from neurofit.errors import user_message

        message = user_message(error)
        if message is None or args.debug:
            raise
        print(f"neurofit {args.command}: error: {message}", file=sys.stderr)  # one message, the last line
        return 1


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "simulate":
        out = Path(args.out_dir)
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} exists and is not empty; choose a new folder")
        stage_simulate(str(out), json.loads(args.settings))
    elif args.command == "check":
        return _check_config(args.configfile)
    elif args.command == "inspect":
        from neurofit.neural.inspect import format_report, inspect_source

        report, snippet, others = inspect_source(args.source, args.asset, args.api_url)
        if args.json:
            print(json.dumps({**report, "config_snippet": snippet, "other_assets": others}, indent=2, default=str))
        else:
            print(format_report(report, snippet))
            if others:
                print(f"\n{len(others)} other NWB asset(s), inspect one with --asset: {others[:10]}")
    elif args.command == "layers":
        try:
            print(describe_layers(args.config, args.model, args.entry, args.match, args.json))
        except ValueError as error:
            parser.error(str(error))
    return 0


def _check_config(configfile: str) -> int:
    from neurofit import config as nf_config

    if not Path(configfile).is_file():
        raise nf_config.ConfigError(f"{configfile}: no such config file")
    config = nf_config.load_yaml(configfile)
    if not isinstance(config, dict):
        raise nf_config.ConfigError(f"{configfile}: a config is a YAML mapping (datasets:, models:, ...)")
    nf_config.check(config, Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml")
    for warning in nf_config.climbing_paths(config):
        print(warning, file=sys.stderr)
    print(f"{configfile}: valid")
    return 0


def _model_entry(config_path: str | None, model: str | None, entry: str | None) -> tuple[str, dict[str, Any]]:
    import yaml

    from neurofit import config as nf_config

    if entry:
        return model or "entry", json.loads(entry)
    if not config_path or not model:
        raise ValueError("give a config and a model name, or --entry '<model entry as JSON>'")
    config = yaml.safe_load(Path(config_path).read_text())
    models = config.get("models") or {}
    if model not in models:
        raise ValueError(f"models.{model}: not in {config_path}; its models: {list(models)}")
    return model, nf_config.model_settings(config, model)


def describe_layers(config_path: str | None, model: str | None, entry: str | None = None,
                    match: list[str] | None = None, as_json: bool = False) -> str:
    """``neurofit layers``: the layer table of a model entry (random weights: shapes do not depend on them)."""
    from neurofit.feature_settings import FeatureSettings
    from neurofit.features import layer_shapes, preprocess_for, preprocess_named
    from neurofit.models.catalog import is_named_network, match_layers
    from neurofit.models.train import ModelSpec
    from neurofit.models.zoo import NamedNetwork, for_listing

    name, settings = _model_entry(config_path, model, entry)
    if is_named_network(settings):
        prepared = for_listing(NamedNetwork.from_config(name, {"weights": "random", **settings}))
        options = FeatureSettings.from_config(settings.get("features"), f"models.{name}.features")
        network, prep = prepared.model, preprocess_named(prepared.input, options.preprocessing())
    else:
        spec = ModelSpec.from_config(settings)
        options = FeatureSettings.from_config(spec.features, f"models.{name}.features")
        network, prep = spec.build(), preprocess_for(spec.architecture, spec.image_size, options.preprocessing())
    rows = layer_shapes(network, prep)
    if match:
        keep = set(match_layers(match, [row["layer"] for row in rows], key=f"models.{name}.layers"))
        rows = [row for row in rows if row["layer"] in keep]
    if as_json:
        return json.dumps({"model": name, **prep.describe(), "layers": rows}, indent=2)
    width = max(len(row["layer"]) for row in rows) + 2
    lines = [f"{name}: input {prep.describe()['input_size']}; {prep.describe()['input_normalisation']}",
             f"{'layer':<{width}}{'type':<28}{'output shape':<22}features"]
    for row in rows:
        shape = "x".join(map(str, row["output_shape"])) if isinstance(row["output_shape"], list) \
            else str(row["output_shape"] or "not called")
        lines.append(f"{row['layer']:<{width}}{row['type']:<28}{shape:<22}{row['features'] or ''}")
    if match:
        lines.append("\nlayers:  # paste into the model entry\n" + "\n".join(f"  - {row['layer']}" for row in rows))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
