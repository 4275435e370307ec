"""Reading the validated config: which datasets, models, layers and regions the DAG spans.

torch-free, so the Snakefile can import it at DAG-build time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from neurofit.models.catalog import is_external, layer_names
from neurofit.simulate_defaults import simulation_settings

SIMULATED_PREFIX = "simulated:"


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


def model_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A model entry with what a reference model inherits from its simulator filled in."""
    entry = dict(config["models"][name])
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


def manifest_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A dataset entry without what only later stages read (``responses``, ``regions``)."""
    return {k: v for k, v in dataset(config, name).items() if k not in ("responses", "regions")}


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
