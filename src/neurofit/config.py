"""Reading the validated config: which datasets, models, layers and regions the DAG spans.

torch-free, so the Snakefile can import it at DAG-build time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from neurofit.models.catalog import layer_names
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


def variant_name(run: str, epoch: int) -> str:
    """The model name of epoch ``epoch`` of the training run ``run`` (a model with ``checkpoints``)."""
    return f"{run}_e{epoch}"


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
        if entry.get("weights") or entry.get("objective") == "untrained":
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


def layers(config: dict[str, Any], name: str) -> list[str]:
    entry = model_settings(config, name)
    return list(entry.get("layers") or layer_names(entry.get("architecture", "alexnet_small"), entry))


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
