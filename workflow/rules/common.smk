# Config validation and the names of every artefact (via neurofit.paths); no analysis logic here.
import asyncio
import mimetypes
import sys

from snakemake.exceptions import NestedCoroutineError
from snakemake.utils import min_version, validate

from neurofit import config as nf_config
from neurofit.cache import canonical, stage_params
from neurofit.data.dandi import DandiSpec
from neurofit.neural.stimuli import stimulus_settings
from neurofit.paths import Layout
from neurofit.report.provenance import software_versions
from neurofit.simulate_defaults import simulation_settings

min_version("8.10")
# The report shows the run's config (a .yaml file); Python's mimetypes does not know .yaml.
mimetypes.add_type("text/yaml", ".yaml")


try:
    nf_config.check(config, workflow.source_path("../schemas/config.schema.yaml"))
except nf_config.ConfigError as _error:
    sys.exit(f"neurofit: {_error}")  # every bad key, last on screen, without a traceback of the Snakefile
validate(config, "../schemas/config.schema.yaml", set_default=True)
# No mapping's key order means anything in the config (neurofit.cache), so the rules read a key-sorted
# copy: a config written back by yaml.safe_dump, or with its keys moved, gives the same params.
_sorted_config = canonical(config)
config.clear()
config.update(_sorted_config)
for _warning in nf_config.climbing_paths(config):
    print(_warning, file=sys.stderr)

LAYOUT = Layout(results=config["results"], resources=config["resources"])
# DANDI entries are checked (no request) before any job runs: a bad id, version or asset path stops here.
for _name, _entry in config["datasets"].items():
    if _entry["source"] == "dandi":
        DandiSpec.from_config(_name, _entry)
# In name order: the order of a YAML mapping carries no meaning (yaml.safe_dump sorts it), so it must not
# change which jobs run or what they write. Lists (layers, regions, metrics) keep their order.
DATASETS = sorted(config["datasets"])
# Scored models: a model with `checkpoints` stands for its variants <model>_e<epoch> (one training job).
MODELS = nf_config.scored_models(config)
TRAINED = nf_config.trained_models(config)
CHECKPOINT_RUNS = list(nf_config.checkpoint_runs(config))
METRICS = list(config["encoding"]["metrics"])
# Figures 1-3 and 5 show one metric, the first listed; the per-neuroid figure exists only for metrics
# that score each neuroid (population metrics such as RSA/CKA have no per-neuroid scores).
FIGURE_METRIC = METRICS[0]
PER_NEUROID_METRICS = ["ridge", "pls", "factorised"]
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


def dandi_cache(dataset):
    """The folder whose dandi/<id>/<version>/ holds a DANDI dataset's verified files (shared via cache_dir)."""
    return config["datasets"][dataset].get("cache_dir", config["resources"])



def model_weights_input(wildcards):
    source = nf_config.reference_dataset(config["models"][wildcards.model])
    if source is not None:
        return {"weights_in": LAYOUT.simulated_reference_weights(sim_key(source))}
    weights = nf_config.weights_file(config["models"][wildcards.model])
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
        LAYOUT.provenance("models.html"),
    ]


def final_outputs():
    if not DATASETS:  # a config with only trial datasets (workflow/rules/trials.smk)
        return []
    return [
        LAYOUT.table("predictivity"),
        LAYOUT.table("predictivity", "parquet"),
        LAYOUT.table("best_layer"),
        LAYOUT.table("comparisons"),
        *report_outputs(),
    ]


# -- what each job asks of the scheduler ----------------------------------------------------------
# Sized from the benchmark files (results/benchmarks/<stage>/...tsv: wall s, max_rss MB) of
# config/config.yaml on 2 CPUs: peak RSS about 2x rounded up (the Python + torch/xarray imports are
# most of it), plus a share of the input size for the stages whose arrays grow with the data, and
# runtimes far above the measured seconds so a bigger config or a slower node is not killed.
# Measured peaks (RSS MB / wall s): simulate 627/8.7 (was 752/17 before its NWB tables came from arrays), manifest -/0.2, responses 168/1.4, ceiling 209/3.7,
# train 613/57 (3 epochs), features 347/7.4, tables 223/3.6, figures 163/2.1.
# fit (one job per dataset x metric x model x layer, all regions; 3 regions x 30 units, 240 stimuli,
# 10 splits, 1000 bootstrap draws and permutations; input = features + responses; shared 2-core machine
# at load 8): 413 MB / 11-28 s on the default run's 15 jobs (4.6 MB of input at most); on wider copies
# of a layer, ridge 412/423/473/1092 MB at 4.6/16.4/63.6/252 MB of input (1 MB per input MB, 3.3 above
# 64 MB), pls 373/298 MB at 16.4/63.6 MB, rsa 373/613 MB and cka -/496 MB at 16.4/63.6 MB (rsa: 5 MB per
# input MB, the steepest), wall up to 127 s (rsa, 63.6 MB: about 2 s per input MB). So: 2x the 413 MB
# base, 2x the rsa slope, and a runtime that grows by 6 s per input MB (3x the measured rate) over an hour.
JOB_SIZES = {
    "simulate": {"mem_mb": 1500, "mem_mb_per_input_mb": 0, "runtime": 30},
    "manifest": {"mem_mb": 500, "mem_mb_per_input_mb": 0, "runtime": 30},
    "responses": {"mem_mb": 1000, "mem_mb_per_input_mb": 0, "runtime": 60},
    "ceiling": {"mem_mb": 500, "mem_mb_per_input_mb": 4, "runtime": 30},
    "train": {"mem_mb": 1500, "mem_mb_per_input_mb": 0, "runtime": 240},
    "features": {"mem_mb": 1000, "mem_mb_per_input_mb": 4, "runtime": 60},
    "fit": {"mem_mb": 850, "mem_mb_per_input_mb": 10, "runtime": 60, "runtime_per_input_mb": 0.1},
    "tables": {"mem_mb": 500, "mem_mb_per_input_mb": 2, "runtime": 30},
    "figures": {"mem_mb": 500, "mem_mb_per_input_mb": 0, "runtime": 15},
}
GPU_RULES = ("train", "features")


def job_resources(stage):
    """Memory (and for the fits, runtime, in minutes) that grows with the input and doubles on each retry
    (the SLURM profile retries an OOM or time-limit kill once), and a GPU for the network stages when the
    config asks for one."""
    size = JOB_SIZES[stage]

    def grown(base, per_input_mb):
        """``base`` plus ``per_input_mb`` per MB of the job's input, doubled on each retry."""

        def resource(wildcards, input, attempt):
            if per_input_mb and asyncio.events._get_running_loop() is not None:
                # Inside Snakemake's event loop (DAG building, --report) input.size_mb would start a coroutine
                # that cannot run ("coroutine ... was never awaited"): say "not known yet" as input.size_mb would.
                raise NestedCoroutineError("input sizes are measured once the job is ready")
            grows = per_input_mb * input.size_mb if per_input_mb else 0
            return int(base + grows) * attempt

        return resource

    resources = {"mem_mb": grown(size["mem_mb"], size["mem_mb_per_input_mb"]),
                 "runtime": grown(size["runtime"], size.get("runtime_per_input_mb", 0))}
    compute = config["compute"]
    if compute["gpu"] and stage in GPU_RULES:
        resources["gpu"] = 1
        if compute["gpu_model"]:
            resources["gpu_model"] = compute["gpu_model"]
        if compute["gpu_partition"]:
            resources["slurm_partition"] = compute["gpu_partition"]
    return resources

