"""``neurofit <command>``: the one entry that rules and people call; the only place stages meet.

Each pipeline stage is a function here taking file paths and plain settings; the Snakemake rules
call them through ``workflow/scripts/<stage>.py`` (:func:`run_from_snakemake`), people through
:func:`main`.
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


def stage_manifest(dataset: dict[str, Any], out: str, local_root: str | None = None) -> None:
    from neurofit.data.local import local_manifest, write_manifest

    root = local_root or dataset.get("path")
    if dataset["source"] not in ("local", "simulated"):
        raise ValueError(f"source {dataset['source']!r} is not supported by the manifest stage")
    manifest = local_manifest(root, dataset.get("assets"))
    manifest["source"] = dataset["source"]
    write_manifest(manifest, out)
    log.info("manifest: %d NWB file(s) from %s", len(manifest["assets"]), root)


def stage_responses(manifest_path: str, settings: dict[str, Any], regions: list[str], responses_out: str,
                    stimuli_out: str) -> None:
    from neurofit.data.local import read_manifest
    from neurofit.neural.responses import ResponseSpec, responses_from_nwb

    manifest = read_manifest(manifest_path)
    spec = ResponseSpec.from_config({**settings, "regions": regions})
    if len(manifest["assets"]) != 1:
        raise NotImplementedError("merging several NWB files into one response set is not supported yet")
    responses, stimuli = responses_from_nwb(manifest["assets"][0]["local_path"], spec)
    for path in (responses_out, stimuli_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    responses.to_netcdf(responses_out, engine="h5netcdf")
    stimuli.to_netcdf(stimuli_out, engine="h5netcdf")
    log.info("responses %s; %d stimuli", dict(responses.sizes), stimuli.sizes["stimulus"])


def stage_ceiling(responses_path: str, settings: dict[str, Any], out: str) -> None:
    import xarray as xr

    from neurofit.encoding.ceiling import split_half_ceiling

    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    reliability = split_half_ceiling(responses.values.astype(np.float64), responses["stimulus_id"].values,
                                     responses["repeat"].values, settings.get("n_splits", 10),
                                     settings.get("seed", 1))
    ds = xr.Dataset({"reliability": (("split", "neuroid"), reliability)},
                    coords={"region": ("neuroid", responses["region"].values),
                            "unit_id": ("neuroid", responses["unit_id"].values)},
                    attrs={"method": "split-half over repeats, Spearman-Brown corrected"})
    ds.to_netcdf(out, engine="h5netcdf")


def stage_train(settings: dict[str, Any], weights_out: str, performance_out: str,
                weights_in: str | None = None) -> None:
    from neurofit.models.train import ModelSpec, evaluate_loaded, train_model

    spec = ModelSpec.from_config(settings)
    if weights_in:
        perf = evaluate_loaded(spec, weights_in, weights_out, performance_out)
    else:
        perf = train_model(spec, weights_out, performance_out)
    log.info("model %s: %s", spec.architecture, {k: v for k, v in perf.items() if k != "train_loss"})


def stage_features(settings: dict[str, Any], weights: str, stimuli_path: str, layer: str, out: str) -> None:
    import xarray as xr

    from neurofit.features import extract_layer, save_features
    from neurofit.models.train import ModelSpec
    from neurofit.models.weights import load_weights

    spec = ModelSpec.from_config(settings)
    model = load_weights(spec.build(), weights)
    stimuli = xr.load_dataarray(stimuli_path, engine="h5netcdf")
    features = extract_layer(model, layer, stimuli, spec.image_size)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_features(features, out, architecture=spec.architecture)


def stage_fit(features_path: str, responses_path: str, region: str, metric: str, settings: dict[str, Any],
              out: str) -> None:
    import xarray as xr

    from neurofit.encoding.fit import fit_ridge
    from neurofit.neural.responses import average_repeats

    features = xr.load_dataarray(features_path, engine="h5netcdf")
    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    mean = average_repeats(responses)
    mean = mean.isel(neuroid=mean["region"].values == region)
    if mean.sizes["neuroid"] == 0:
        raise ValueError(f"{responses_path}: no neuroids in region {region!r}")
    if metric != "ridge":
        raise ValueError(f"unknown metric {metric!r}; known: ['ridge']")
    splits = settings.get("splits", {})
    alphas = settings.get("alphas", {})
    fit = fit_ridge(features, mean, preset=splits.get("preset", "brainscore"),
                    n_splits=splits.get("n_splits", 10), train_size=splits.get("train_size", 0.9),
                    seed=splits.get("seed", 1),
                    alphas=np.logspace(alphas.get("min_exp", -2), alphas.get("max_exp", 6), alphas.get("n", 17)),
                    inner_folds=settings.get("inner_folds", 5))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fit.to_netcdf(out, engine="h5netcdf")


def stage_tables(fits: list[dict[str, str]], ceilings: dict[str, str], normalisation: str, csv_out: str,
                 parquet_out: str, best_out: str) -> None:
    import xarray as xr

    from neurofit.report.tables import best_layer_table, ceiling_by_region, predictivity_table, write_table

    by_dataset = {}
    for name, path in ceilings.items():
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            by_dataset[name] = ceiling_by_region(ds.load())
    keyed = [(fit, fit["path"]) for fit in fits]
    write_table(predictivity_table(keyed, by_dataset, normalisation), csv_out, parquet_out)
    write_table(best_layer_table(keyed, by_dataset, normalisation), best_out)


def _best_layers(best_path: str, metric: str) -> pd.DataFrame:
    """The ``best_layer`` table's rows of one metric (the figures show one)."""
    import pandas as pd

    best = pd.read_csv(best_path)
    return best[best["metric"] == metric]


def stage_figures(table_path: str, best_path: str, metric: str, layer_orders: dict[str, list[str]],
                  region_order: list[str], heatmap_paths: dict[str, list[str]], best_layer: list[str]) -> None:
    import pandas as pd

    from neurofit.report.figures import best_layer_figure, layer_region_heatmap

    table = pd.read_csv(table_path)
    table = table[table["metric"] == metric]
    for model, paths in heatmap_paths.items():
        layer_region_heatmap(table, model, layer_orders[model], region_order, paths)
    best_layer_figure(_best_layers(best_path, metric), layer_orders, region_order, best_layer)


def stage_figure_performance(best_path: str, metric: str, performance: dict[str, str], region_order: list[str],
                             figure: list[str], correlations_out: str) -> None:
    from neurofit.report.figures import performance_vs_predictivity

    perf = {model: json.loads(Path(path).read_text()) for model, path in performance.items()}
    correlations = performance_vs_predictivity(_best_layers(best_path, metric), perf, region_order, figure)
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
                                region_order: list[str], figure: list[str]) -> None:
    from neurofit.report.figures import learning_rule_figure

    learning_rule_figure(_best_layers(best_path, metric), models, region_order, figure)


def stage_table_pages(predictivity: str, best_layer: str, predictivity_html: str, best_layer_html: str) -> None:
    from neurofit.report.html import write_table_page

    write_table_page(predictivity, predictivity_html, "Predictivity: every layer")
    write_table_page(best_layer, best_layer_html, "Predictivity: layer chosen on training stimuli")


def stage_provenance(config: dict[str, Any], software: dict[str, Any], config_out: str, software_json: str,
                     software_html: str) -> None:
    from neurofit.report.provenance import write_config, write_software

    write_config(config, config_out)
    write_software(software, software_json, software_html)


def stage_data_manifest(manifests: dict[str, str], responses: dict[str, str], html_out: str, json_out: str) -> None:
    from neurofit.report.provenance import write_data_manifest

    write_data_manifest(manifests, responses, html_out, json_out)


STAGES = {name[len("stage_"):]: fn for name, fn in globals().items() if name.startswith("stage_")}


def run_from_snakemake(stage: str, smk: Any) -> None:
    """Entry of ``workflow/scripts``: logs to the rule's log file, calls the stage with the rule's
    named inputs, outputs and params as keyword arguments."""
    log_path = smk.log[0] if smk.log else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stage_fn = STAGES[stage]
    # Wildcards and named inputs/outputs/params the stage takes; the others (e.g. the ``code`` hash that reruns a
    # rule when library code changes) are there for Snakemake only.
    wanted = inspect.signature(stage_fn).parameters
    named = {**dict(smk.wildcards.items()), **dict(smk.input.items()), **dict(smk.output.items()),
             **dict(smk.params.items())}
    try:
        stage_fn(**{k: v for k, v in named.items() if k in wanted})
    except Exception:
        log.exception("stage %s failed", stage)
        raise


# -- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neurofit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="write the simulated ground-truth dandiset")
    sim.add_argument("out_dir", help="folder to write dandiset/, ground_truth.json, reference_model.pt into")
    sim.add_argument("--settings", default="{}", help="JSON object of simulator settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "simulate":
        out = Path(args.out_dir)
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} exists and is not empty; choose a new folder")
        stage_simulate(str(out), json.loads(args.settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
