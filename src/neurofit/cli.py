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
                    binned_out: str, summary_out: str, stimuli_out: str) -> None:
    from neurofit.data.assets import asset_source
    from neurofit.data.local import read_manifest
    from neurofit.neural.responses import ResponseSpec, build_responses

    manifest = read_manifest(manifest_path)
    spec = ResponseSpec.from_config({**settings, "regions": regions})
    # The pipeline always computes noise ceilings, so too few repeats fails here, naming the files.
    result = build_responses([asset_source(asset) for asset in manifest["assets"]], spec, ceiling=True)
    for path in (responses_out, binned_out, summary_out, stimuli_out):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    result.responses.to_netcdf(responses_out, engine="h5netcdf")
    result.binned.to_netcdf(binned_out, engine="h5netcdf")
    result.stimuli.to_netcdf(stimuli_out, engine="h5netcdf")
    Path(summary_out).write_text(json.dumps(result.summary, indent=2, default=str))
    log.info("responses %s from %d file(s); %d stimuli; neuroids per region %s", dict(result.responses.sizes),
             len(manifest["assets"]), result.stimuli.sizes["stimulus"], result.summary["neuroids_per_region"])
    for record in result.summary["filters"]:
        log.info("filter %s %s: kept %d, dropped %d", record["filter"], record["setting"], record["kept"],
                 record["dropped"])


def stage_ceiling(responses_path: str, settings: dict[str, Any], out: str) -> None:
    import xarray as xr

    from neurofit.encoding.ceiling import split_half_ceiling, split_half_similarity

    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    counts = responses.values.astype(np.float64)
    args = (counts, responses["stimulus_id"].values, responses["repeat"].values)
    n_splits, seed = settings.get("n_splits", 10), settings.get("seed", 1)
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
                                     "Pearson per neuroid (ridge, pls), Spearman of RDMs (rsa), debiased CKA (cka)",
                           "n_splits": n_splits, "seed": seed})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(out, engine="h5netcdf")


def stage_train(settings: dict[str, Any], weights_out: str, performance_out: str,
                weights_in: str | None = None, checkpoint: str | None = None) -> None:
    from neurofit.models.train import ModelSpec, evaluate_loaded, train_model

    spec = ModelSpec.from_config(settings)
    if weights_in:
        perf = evaluate_loaded(spec, weights_in, weights_out, performance_out)
    else:
        perf = train_model(spec, weights_out, performance_out, checkpoint)
    log.info("model %s: %s", spec.architecture, {k: v for k, v in perf.items() if k != "train_loss"})


def stage_features(settings: dict[str, Any], weights: str, stimuli_path: str, layer: str, out: str) -> None:
    import xarray as xr

    from neurofit.features import extract_layer, preprocess_for, save_features
    from neurofit.models.train import ModelSpec
    from neurofit.models.weights import load_weights

    spec = ModelSpec.from_config(settings)
    options = spec.features
    model = load_weights(spec.build(), weights)
    stimuli = xr.load_dataarray(stimuli_path, engine="h5netcdf")
    features = extract_layer(model, layer, stimuli, preprocess_for(spec.architecture, spec.image_size, options),
                             batch_size=int(options.get("batch_size", 128)), reduce=options.get("reduce"),
                             max_dims=options.get("max_dims"), seed=spec.seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_features(features, out, architecture=spec.architecture, objective=spec.objective,
                  learning_rule=spec.learning_rule)


def stage_fit(features_path: str, responses_path: str, region: str, metric: str, settings: dict[str, Any],
              out: str) -> None:
    import xarray as xr

    from neurofit.encoding.fit import fit_metric, stimulus_labels
    from neurofit.neural.responses import average_repeats

    features = xr.load_dataarray(features_path, engine="h5netcdf")
    responses = xr.load_dataarray(responses_path, engine="h5netcdf")
    responses = responses.isel(neuroid=responses["region"].values == region)
    if responses.sizes["neuroid"] == 0:
        raise ValueError(f"{responses_path}: no neuroids in region {region!r}")
    splits = settings.get("splits", {})
    alphas = settings.get("alphas", {})
    stratify = stimulus_labels(responses, splits.get("stratify_coords", ["object_name", "category"]))
    fit = fit_metric(metric, features, average_repeats(responses), preset=splits.get("preset", "brainscore"),
                     n_splits=splits.get("n_splits", 10), train_size=splits.get("train_size", 0.9),
                     seed=splits.get("seed", 1), stratify=stratify,
                     alphas=np.logspace(alphas.get("min_exp", -2), alphas.get("max_exp", 6), alphas.get("n", 17)),
                     inner_folds=settings.get("inner_folds", 5), backend=settings.get("backend", "auto"),
                     dtype=settings.get("dtype", "float64"), pls_components=settings.get("pls_components", 25),
                     n_boot=settings.get("bootstrap", {}).get("n", 1000),
                     n_permutations=settings.get("permutations", {}).get("n", 1000),
                     resample_seed=settings.get("bootstrap", {}).get("seed", 0))
    log.info("%s %s: mean test score %.3f over %d splits", metric, region, float(fit["test_score"].mean()),
             fit.sizes["split"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fit.to_netcdf(out, engine="h5netcdf")


def stage_tables(fits: list[dict[str, str]], ceilings: dict[str, str], normalisation: str, csv_out: str,
                 parquet_out: str, best_out: str, ci: str = "bootstrap_both") -> None:
    import xarray as xr

    from neurofit.report.tables import best_layer_table, ceiling_by_region, predictivity_table, write_table

    by_dataset = {}
    for name, path in ceilings.items():
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            by_dataset[name] = ceiling_by_region(ds.load())
    keyed = [(fit, fit["path"]) for fit in fits]
    write_table(predictivity_table(keyed, by_dataset, normalisation, ci), csv_out, parquet_out)
    write_table(best_layer_table(keyed, by_dataset, normalisation, ci), best_out)


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
    look = commands.add_parser("inspect", help="what an NWB file (or DANDI URL) holds, and a config snippet for it")
    look.add_argument("source", help="an NWB file, or a DANDI URL (dandiset, asset path or asset download URL)")
    look.add_argument("--asset", help="for a DANDI URL naming several NWB assets: the asset path to inspect")
    look.add_argument("--json", action="store_true", help="print the description as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "simulate":
        out = Path(args.out_dir)
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} exists and is not empty; choose a new folder")
        stage_simulate(str(out), json.loads(args.settings))
    elif args.command == "inspect":
        from neurofit.neural.inspect import format_report, inspect_source
        from neurofit.neural.nwb import NWBContentError

        try:
            report, snippet, others = inspect_source(args.source, args.asset)
        except NWBContentError as error:
            parser.error(str(error))
        if args.json:
            print(json.dumps({**report, "config_snippet": snippet, "other_assets": others}, indent=2, default=str))
        else:
            print(format_report(report, snippet))
            if others:
                print(f"\n{len(others)} other NWB asset(s), inspect one with --asset: {others[:10]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
