# The trial-structured part of the DAG (config key `trials:`): its config, artefact names and input functions.
from neurofit.paths import TrialLayout
from neurofit.simulate_trials import TrialSimulationSpec

TRIALS = config.get("trials") or {}
TRIAL_DATASETS = list(TRIALS.get("datasets", {}))
TRIAL_MODELS = list(TRIALS.get("models", {}))
TLAYOUT = TrialLayout(results=config["results"], resources=config["resources"])
TRIAL_SIMULATED = "simulated:"
for _name, _entry in TRIALS.get("datasets", {}).items():
    if _entry["source"] == "dandi":
        DandiSpec.from_config(f"trials.datasets.{_name}", _entry)
for _name, _entry in TRIALS.get("models", {}).items():
    _source = _entry.get("weights", "")[len(TRIAL_SIMULATED):]
    if _source and TRIALS["datasets"].get(_source, {}).get("source") != "simulated":
        raise ValueError(f"trials.models.{_name}.weights: {_entry['weights']!r} names no simulated trial dataset")


def trial_sim_key(dataset):
    return TLAYOUT.simulated_key(dataset, TRIALS["datasets"][dataset].get("simulate", {}))


def trial_regions(dataset):
    """A trial dataset's regions; a simulated one without `regions` has every region of its simulator."""
    entry = TRIALS["datasets"][dataset]
    if "regions" in entry:
        return list(entry["regions"])
    return list(TrialSimulationSpec.from_config(entry.get("simulate", {})).regions)


def trial_manifest_input(wildcards):
    if TRIALS["datasets"][wildcards.dataset]["source"] == "simulated":
        return {"local_root": TLAYOUT.trial_simulated_dandiset(trial_sim_key(wildcards.dataset))}
    return {}


def trial_weights_input(wildcards):
    weights = TRIALS["models"][wildcards.model].get("weights", "")
    if weights.startswith(TRIAL_SIMULATED):
        return {"weights_in": TLAYOUT.trial_simulated_weights(trial_sim_key(weights[len(TRIAL_SIMULATED):]))}
    return {}


def trial_outputs():
    if not TRIAL_DATASETS:
        return []
    return [
        TLAYOUT.trial_table("predictivity"),
        *[TLAYOUT.trial_figure(f"{kind}_{d}") for d in TRIAL_DATASETS for kind in ("trajectories", "over_time")],
        TLAYOUT.trial_table("predictivity", "html"),
        TLAYOUT.trial_table("networks", "html"),
        LAYOUT.provenance("trial_data_manifest.html"),
        LAYOUT.provenance("config.yaml"),  # the resolved config and software versions, also for a trials-only run
    ]


def trial_figure_report(kind, ext):
    """Figure ``<kind>_{dataset}.<ext>``, registered with the report; its caption: workflow/report/trial_<kind>.rst."""
    return report(
        TLAYOUT.trial_figure(f"{kind}_{{dataset}}", ext),
        caption=f"../report/trial_{kind}.rst",
        category="Time-resolved",
        subcategory="Figures",
    )
