"""Reading the validated config: which datasets, models, layers and regions the DAG spans.

torch-free, so the Snakefile can import it at DAG-build time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from neurofit.feature_settings import image_set_files
from neurofit.models.catalog import (
    is_external,
    is_named_network,
    is_pattern,
    layer_names,
    match_layers,
    selectable_layers,
)
from neurofit.simulate_defaults import simulation_settings

SIMULATED_PREFIX = "simulated:"
VARIANT = re.compile(r"^(?P<run>.+)_e(?P<epoch>[0-9]+)$")


def dataset(config: dict[str, Any], name: str) -> dict[str, Any]:
    return config["datasets"][name]


def regions(config: dict[str, Any], name: str) -> list[str]:
    entry = dataset(config, name)
    if "regions" in entry:
        return list(entry["regions"])
    if entry["source"] == "simulated":
        return list(simulation_settings(entry.get("simulate", {}))["regions"])
    raise ValueError(f"datasets.{name}: 'regions' is required for source {entry['source']!r}")


def reference_dataset(model: dict[str, Any]) -> str | None:
    """Name of the simulated dataset whose hidden reference network this model loads, if any."""
    weights = model.get("weights")
    if isinstance(weights, str) and weights.startswith(SIMULATED_PREFIX):
        return weights[len(SIMULATED_PREFIX):]
    return None


def weights_file(model: dict[str, Any]) -> str | None:
    """The local weights file a model entry loads (a workflow input, so a changed file reruns it);
    None for trained models, ``pretrained[:tag]``, ``random`` and ``simulated:<dataset>``."""
    weights = model.get("weights")
    if not isinstance(weights, str) or weights in ("random", "pretrained") or \
            weights.startswith(("pretrained:", SIMULATED_PREFIX)):
        return None
    return weights


def variant_name(run: str, epoch: int) -> str:
    """The model name of epoch ``epoch`` of the training run ``run`` (a model with ``checkpoints``)."""
    return f"{run}_e{epoch}"


def trained_here(entry: dict[str, Any]) -> bool:
    """Whether a model entry's train job trains weights (else it only loads or initialises them and
    evaluates them: a named network, given weights, or the untrained control)."""
    return not (entry.get("weights") or entry.get("objective") == "untrained" or is_named_network(entry))


def train_threads(config: dict[str, Any], name: str) -> int:
    """Cores a model's train job holds: 2 to train (torch splits each step's work), 1 to evaluate only, so
    that such a job runs beside the simulator (the default run's first 10 s) instead of waiting for it.
    Training results depend on the thread count (CPU reduction order), so it is fixed per job kind."""
    return 2 if trained_here(model_settings(config, name)) else 1


def checkpoint_runs(config: dict[str, Any]) -> dict[str, list[int]]:
    """Models whose one training run is scored at several epochs (``checkpoints``), with those epochs."""
    runs = {}
    for name, entry in config["models"].items():
        if entry.get("checkpoints") is None:
            continue
        epochs = sorted(set(int(e) for e in entry["checkpoints"]))
        last = entry.get("epochs", epochs[-1] if epochs else None)
        if not epochs or epochs[0] < 0 or last != epochs[-1]:
            raise ValueError(f"models.{name}.checkpoints {entry['checkpoints']}: epochs >= 0 whose last is the "
                             f"run's `epochs` ({last}); leave `epochs` unset to train to the last checkpoint")
        if not trained_here(entry):
            raise ValueError(f"models.{name}.checkpoints: only a model that is trained here has checkpoints")
        runs[name] = epochs
    return runs


def variant_of(config: dict[str, Any], name: str) -> tuple[str, int] | None:
    """(run, epoch) when ``name`` is a checkpoint variant, else None."""
    match = VARIANT.match(name)
    if match is None:
        return None
    epochs = checkpoint_runs(config).get(match["run"])
    if epochs is None or int(match["epoch"]) not in epochs:
        return None
    return match["run"], int(match["epoch"])


def scored_models(config: dict[str, Any]) -> list[str]:
    """Every model the DAG extracts features from and scores: each entry, except that a model with
    ``checkpoints`` stands for one variant ``<model>_e<epoch>`` per checkpoint (all from one training job)."""
    runs = checkpoint_runs(config)
    names: list[str] = []
    for name in config["models"]:
        names += [variant_name(name, e) for e in runs[name]] if name in runs else [name]
    clash = sorted(set(n for n in names if names.count(n) > 1))
    if clash:
        raise ValueError(f"models: {clash} is both a model entry and a checkpoint variant's name; rename the entry")
    return names


def trained_models(config: dict[str, Any]) -> list[str]:
    """Models with a plain train job (one weights file each): every entry that has no ``checkpoints``."""
    runs = checkpoint_runs(config)
    return [name for name in config["models"] if name not in runs]


def name_pattern(names: list[str]) -> str:
    """A wildcard constraint matching exactly these names (none: a pattern that matches nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def model_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A model entry with what a reference model inherits from its simulator filled in; for a
    checkpoint variant ``<run>_e<epoch>``, its run's entry trained for ``epoch`` epochs."""
    variant = variant_of(config, name)
    if variant is not None:
        run, epoch = variant
        entry = {k: v for k, v in config["models"][run].items() if k != "checkpoints"}
        return {**entry, "epochs": epoch, "checkpoint_of": run}
    entry = dict(config["models"][name])
    if entry.get("checkpoints") is not None:
        entry.setdefault("epochs", max(entry["checkpoints"]))
    source = reference_dataset(entry)
    if source is not None:
        if source not in config["datasets"] or config["datasets"][source]["source"] != "simulated":
            raise ValueError(f"models.{name}.weights: {entry['weights']!r} names no simulated dataset")
        sim = simulation_settings(config["datasets"][source].get("simulate", {}))
        for key in ("architecture", "width", "image_size", "seed"):
            entry.setdefault(key, sim[key])
        entry["objective"] = "reference"
    return entry


# Model keys that choose which activations are read and how, not the weights: changing them reruns the
# model's features and fits, never its training. An external (torchvision/timm) model's performance
# probe reads its last listed layer, so there ``layers`` also decides what training writes.
FEATURE_KEYS = ("layers", "features")


def training_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """What decides a model's weights and performance.json (the train rule's params)."""
    entry = model_settings(config, name)
    dropped = ("features",) if is_external(entry.get("architecture", "")) else FEATURE_KEYS
    return {k: v for k, v in entry.items() if k not in dropped}


def feature_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """What decides one layer's features besides the weights and the layer's name (the features rule's
    params): the network's build settings and ``features``, not the list of other layers."""
    entry = model_settings(config, name)
    return {k: v for k, v in entry.items() if k != "layers" or is_external(entry.get("architecture", ""))}


def pca_image_files(config: dict[str, Any], name: str) -> list[str]:
    """The files of a model's ``features.pca_images`` set (inputs of its features jobs, so that editing an
    image reruns them; a stimuli .nc file made by the workflow is built first)."""
    path = (model_settings(config, name).get("features") or {}).get("pca_images")
    if not path:
        return []
    return [str(file) for file in image_set_files(path)] or [str(path)]


def manifest_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A dataset entry without what only later stages read (``responses``, ``regions``)."""
    return {k: v for k, v in dataset(config, name).items() if k not in ("responses", "regions")}


def layers(config: dict[str, Any], name: str) -> list[str]:
    """The model's feature layers, known at DAG-build time without torch: a built-in architecture's
    blocks (``layers`` may select blocks and cornet time steps by name or pattern); a named network's
    explicit ``layers`` (checked against the built network by its prepare and features jobs)."""
    entry = model_settings(config, name)
    given = entry.get("layers")
    if is_named_network(entry):
        patterns = [layer for layer in given or [] if is_pattern(layer)]
        if patterns:
            raise ValueError(f"models.{name}.layers: patterns {patterns} need the network's module list, which the "
                             f"workflow does not build at DAG time; list the names `neurofit layers <config> {name} "
                             f"--match '{patterns[0]}'` prints")
        return list(given or [])
    architecture = entry.get("architecture", "alexnet_small")
    if given and not is_external(architecture):
        return match_layers(given, selectable_layers(architecture, entry), key=f"models.{name}.layers")
    return list(given or layer_names(architecture, entry))


class ConfigError(ValueError):
    """A config that does not match the schema; the message names every bad key."""


def check(config: dict[str, Any], schema_path: str | Path) -> None:
    """Validate against the JSON schema, reporting each error at its dotted key path
    (Snakemake's own validation, run after this, fills the defaults)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(part) for part in error.absolute_path) or "<top level>"
        problems.append(f"  {where}: {error.message}")
    if problems:
        raise ConfigError("invalid config:\n" + "\n".join(problems))


def climbing_paths(config: dict[str, Any]) -> list[str]:
    """Warnings for relative ``results``/``resources``/``cache_dir`` paths that climb out of the
    working directory: the user's choice, but a config from someone else should not write there unnoticed."""
    keys = {"results": config.get("results"), "resources": config.get("resources"),
            **{f"datasets.{name}.cache_dir": entry.get("cache_dir")
               for name, entry in (config.get("datasets") or {}).items() if isinstance(entry, dict)}}
    warnings = []
    for key, value in keys.items():
        if isinstance(value, str) and not Path(value).is_absolute():
            parts = Path(os.path.normpath(value)).parts
            if parts and parts[0] == "..":
                warnings.append(f"warning: {key}: {value!r} climbs out of the working directory "
                                f"({Path(value).resolve()}); outputs will be written there")
    return warnings


def load_yaml(path: str | Path) -> Any:
    """A YAML file, or a ConfigError naming the file, line and column of a syntax error (Snakemake's
    own message for a bad config file names neither). A missing file is left to the caller."""
    file = Path(path)
    if not file.is_file():
        return None
    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context, opened = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and opened is not None:
            context = f"{context} opened at line {opened.line + 1}:"
        problem = " ".join(str(part) for part in (context, getattr(error, "problem", None)) if part) or str(error)
        raise ConfigError(f"{file}{where}: not valid YAML ({problem}); fix the syntax there (the mistake can be "
                          f"just before that point, e.g. an unclosed bracket or quote, or a tab used for "
                          f"indentation)") from None
