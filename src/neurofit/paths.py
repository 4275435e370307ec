"""The naming scheme: every artefact path of the pipeline is made here, nowhere else.

A path holds what decides its content that is not a rule param: the dataset, model, layer,
region and metric names. Settings under those names are rule params, so Snakemake reruns exactly
the jobs whose settings changed (``--rerun-triggers params``). Simulated datasets also carry a
hash of their settings so that several configs can share ``resources/`` without clobbering.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def short_hash(obj: Any, length: int = 10) -> str:
    """A stable hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def error_note(log: str) -> str:
    """``<log>.error``: the user-facing message of a failed job, written beside its log."""
    return f"{log}.error"


@dataclass(frozen=True)
class Layout:
    """Where artefacts live for one run: ``results`` is per config, ``resources`` is shared."""

    results: str = "results"
    resources: str = "resources"

    # -- data ------------------------------------------------------------------------------
    @staticmethod
    def simulated_key(dataset: str, settings: dict[str, Any]) -> str:
        """``<dataset>-<hash of its simulator settings>``: names one simulated dandiset."""
        return f"{dataset}-{short_hash(settings)}"

    def simulated_dir(self, key: str) -> str:
        return f"{self.resources}/simulated/{key}"

    def simulated_dandiset(self, key: str) -> str:
        return f"{self.simulated_dir(key)}/dandiset"

    def simulated_truth(self, key: str) -> str:
        return f"{self.simulated_dir(key)}/ground_truth.json"

    def simulated_reference_weights(self, key: str) -> str:
        return f"{self.simulated_dir(key)}/reference_model.pt"

    def manifest(self, dataset: str) -> str:
        return f"{self.results}/datasets/{dataset}/manifest.json"

    def dandi_dir(self, dandiset: str, version: str) -> str:
        """Verified downloads of one dandiset version: ``<dir>/<asset path>`` (``resources`` is the cache)."""
        return f"{self.resources}/dandi/{dandiset}/{version}"

    def dandi_resolution(self, dandiset: str, version: str) -> str:
        """The record of which assets (ids, sizes, digests) the configured asset patterns resolved to."""
        return f"{self.dandi_dir(dandiset, version)}/manifest.json"

    def dandi_staging(self, dandiset: str, version: str, asset_id: str) -> str:
        """Where the dandi client downloads (and keeps partial files to resume) before verification."""
        return f"{self.dandi_dir(dandiset, version)}/.partial/{asset_id}"

    # -- neural ----------------------------------------------------------------------------
    def responses(self, dataset: str) -> str:
        return f"{self.results}/responses/{dataset}.nc"

    def responses_binned(self, dataset: str) -> str:
        """The responses in time bins ``(presentation, neuroid, time_bin)``."""
        return f"{self.results}/responses/binned/{dataset}.nc"

    def responses_summary(self, dataset: str) -> str:
        """What the responses stage read and filtered (files, tables, units kept and dropped)."""
        return f"{self.results}/responses/summary/{dataset}.json"

    def stimuli(self, dataset: str) -> str:
        return f"{self.results}/stimuli/{dataset}.nc"

    def ceiling(self, dataset: str) -> str:
        return f"{self.results}/ceilings/{dataset}.nc"

    # -- models ----------------------------------------------------------------------------
    def weights(self, model: str) -> str:
        return f"{self.results}/models/{model}/weights.pt"

    def checkpoint(self, model: str) -> str:
        """Training state after the last finished epoch (removed when training ends)."""
        return f"{self.results}/models/{model}/checkpoint.pt"

    def performance(self, model: str) -> str:
        return f"{self.results}/models/{model}/performance.json"

    def checkpoint_epochs(self, model: str) -> str:
        """The weights and performance at each of a run's ``checkpoints`` epochs (one folder)."""
        return f"{self.results}/models/{model}/epochs"

    @staticmethod
    def epoch_weights(epochs_dir: str | Path, epoch: int) -> str:
        return f"{epochs_dir}/e{epoch}/weights.pt"

    @staticmethod
    def epoch_performance(epochs_dir: str | Path, epoch: int) -> str:
        return f"{epochs_dir}/e{epoch}/performance.json"

    def features(self, dataset: str, model: str, layer: str) -> str:
        return f"{self.results}/features/{dataset}/{model}/{layer}.nc"

    # -- encoding --------------------------------------------------------------------------
    def fit(self, dataset: str, metric: str, model: str, layer: str, region: str) -> str:
        return f"{self.results}/fits/{dataset}/{metric}/{model}/{layer}/{region}.nc"

    # -- report ----------------------------------------------------------------------------
    def table(self, name: str, ext: str = "csv") -> str:
        return f"{self.results}/tables/{name}.{ext}"

    def figure(self, name: str, ext: str = "png") -> str:
        return f"{self.results}/figures/{name}.{ext}"

    def provenance(self, name: str) -> str:
        """Records of how a run was made (resolved config, software, data manifest) for the report."""
        return f"{self.results}/provenance/{name}"

    def log(self, *parts: str) -> str:
        return f"{self.logs_dir()}/" + "/".join(parts) + ".log"

    def logs_dir(self) -> str:
        return f"{self.results}/logs"

    def benchmark(self, *parts: str) -> str:
        """Snakemake's per-job benchmark (wall time, peak RSS): what the rule resources are sized from."""
        return f"{self.results}/benchmarks/" + "/".join(parts) + ".tsv"


@dataclass(frozen=True)
class TrialLayout(Layout):
    """Artefacts of trial-structured (time-resolved) datasets and recurrent models, under ``<results>/trials/``."""

    def trial_simulated_dir(self, key: str) -> str:
        return f"{self.resources}/simulated_trials/{key}"

    def trial_simulated_dandiset(self, key: str) -> str:
        return f"{self.trial_simulated_dir(key)}/dandiset"

    def trial_simulated_truth(self, key: str) -> str:
        return f"{self.trial_simulated_dir(key)}/ground_truth.json"

    def trial_simulated_weights(self, key: str) -> str:
        return f"{self.trial_simulated_dir(key)}/reference_model.pt"

    def trial_manifest(self, dataset: str) -> str:
        return f"{self.results}/trials/datasets/{dataset}/manifest.json"

    def trial_psth(self, dataset: str) -> str:
        """Condition PSTHs ``(condition, time, neuroid)`` pooled over sessions, with the split-half ceiling."""
        return f"{self.results}/trials/responses/{dataset}.nc"

    def trial_summary(self, dataset: str) -> str:
        return f"{self.results}/trials/responses/summary/{dataset}.json"

    def trial_weights(self, model: str) -> str:
        return f"{self.results}/trials/models/{model}/weights.pt"

    def trial_performance(self, model: str) -> str:
        return f"{self.results}/trials/models/{model}/performance.json"

    def trial_features(self, dataset: str, model: str) -> str:
        """Every layer of a model over time for a dataset's conditions and epochs."""
        return f"{self.results}/trials/features/{dataset}/{model}.nc"

    def trial_fit(self, dataset: str, model: str) -> str:
        """The table rows of one dataset x model (every layer, region and metric)."""
        return f"{self.results}/trials/fits/{dataset}/{model}.csv"

    def trial_fit_time(self, dataset: str, model: str) -> str:
        """Predictivity over time of one dataset x model (layer x region x time)."""
        return f"{self.results}/trials/fits/{dataset}/{model}_time.nc"

    def trial_table(self, name: str, ext: str = "csv") -> str:
        return f"{self.results}/trials/tables/{name}.{ext}"

    def trial_figure(self, name: str, ext: str = "png") -> str:
        return f"{self.results}/trials/figures/{name}.{ext}"


def is_url(source: str | Path) -> bool:
    return str(source).startswith(("http://", "https://"))


def recorded_path(source: str | Path) -> str:
    """A file as provenance records it: relative to the working directory (the workflow's) where it lies
    under it, so that the record does not depend on where the clone lies; a URL or a file elsewhere as given."""
    if is_url(source):
        return str(source)
    resolved, cwd = Path(source).resolve(), Path.cwd().resolve()
    return resolved.relative_to(cwd).as_posix() if resolved.is_relative_to(cwd) else str(source)
