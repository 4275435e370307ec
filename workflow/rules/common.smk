# Config validation and the names of every artefact (via neurofit.paths); no analysis logic here.
from snakemake.utils import min_version, validate

from neurofit import config as nf_config
from neurofit.paths import Layout, code_hash
from neurofit.report.provenance import software_versions
from neurofit.simulate_defaults import simulation_settings

min_version("8.10")


validate(config, "../schemas/config.schema.yaml", set_default=True)

LAYOUT = Layout(results=config["results"], resources=config["resources"])
DATASETS = list(config["datasets"])
MODELS = list(config["models"])
METRICS = list(config["encoding"]["metrics"])
# Figures 1-3 and 5 show one metric, the first listed; the per-neuroid figure exists only for metrics
# that score each neuroid (population metrics such as RSA/CKA have no per-neuroid scores).
FIGURE_METRIC = METRICS[0]
PER_NEUROID_METRICS = ["ridge", "pls"]
# Read at DAG-build time, so the provenance record reruns when the software changes.
SOFTWARE = software_versions(workflow.basedir)
NAME = r"[A-Za-z0-9_.\-]+"


wildcard_constraints:
    dataset=NAME,
    model=NAME,
    layer=NAME,
    region=NAME,
    metric=NAME,
    hash="[0-9a-f]{10}",


def sim_settings(dataset):
    return simulation_settings(config["datasets"][dataset].get("simulate", {}))


def sim_key(dataset):
    return LAYOUT.simulated_key(dataset, sim_settings(dataset))


def manifest_input(wildcards):
    entry = config["datasets"][wildcards.dataset]
    if entry["source"] == "simulated":
        return {"local_root": LAYOUT.simulated_dandiset(sim_key(wildcards.dataset))}
    return {}



def model_weights_input(wildcards):
    source = nf_config.reference_dataset(config["models"][wildcards.model])
    if source is not None:
        return {"weights_in": LAYOUT.simulated_reference_weights(sim_key(source))}
    weights = config["models"][wildcards.model].get("weights")
    return {"weights_in": weights} if weights else {}



def fit_keys(dataset=None, metric=None):
    """Every (dataset, metric, model, layer, region) the DAG fits (of one dataset / metric if given)."""
    return [
        dict(dataset=d, metric=m, model=mo, layer=layer, region=r)
        for d in DATASETS
        if dataset in (None, d)
        for m in METRICS
        if metric in (None, m)
        for mo in MODELS
        for layer in nf_config.layers(config, mo)
        for r in nf_config.regions(config, d)
    ]


def region_order():
    return list(dict.fromkeys(r for d in DATASETS for r in nf_config.regions(config, d)))


def neuroid_figure_input(wildcards):
    return {
        "fit_files": [LAYOUT.fit(**key) for key in fit_keys(wildcards.dataset, wildcards.metric)],
        "ceiling_path": LAYOUT.ceiling(wildcards.dataset),
    }


def report_outputs():
    """The figures and provenance records the report shows (PNG stands for each PNG/SVG pair)."""
    return [
        LAYOUT.figure("best_layer"),
        *[LAYOUT.figure(f"heatmap_{m}") for m in MODELS],
        LAYOUT.figure("performance_vs_predictivity"),
        LAYOUT.figure("learning_rules"),
        *[
            LAYOUT.figure(f"neuroid_scores_{d}_{m}")
            for d in DATASETS
            for m in METRICS
            if m in PER_NEUROID_METRICS
        ],
        LAYOUT.table("predictivity", "html"),
        LAYOUT.provenance("config.yaml"),
        LAYOUT.provenance("data_manifest.html"),
    ]


def final_outputs():
    return [
        LAYOUT.table("predictivity"),
        LAYOUT.table("predictivity", "parquet"),
        LAYOUT.table("best_layer"),
        *report_outputs(),
    ]
