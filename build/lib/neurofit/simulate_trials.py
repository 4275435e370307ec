"""The ground-truth brain for trial-structured data: a hidden RNN trained on a task drives Poisson units.

A recurrent network (vanilla leaky RNN by default) is trained with BPTT on a trial task (the delayed response
of DANDI:000006 by default). Each simulated trial runs that network on a noisy input laid on the trial's
epochs; each region's units fire as Poisson processes whose rates are a softplus readout of one layer of the
network (``recurrent`` -> ALM, ``input`` -> vS1 by default). The NWB file has a trials table like 000006's:
``start_time``, ``stop_time``, ``type`` (``lick left`` / ``lick right``), ``response`` (``correct`` /
``incorrect``, from the network's own choice), ``is_good``, and event times relative to the trial start
(``pole_in_time``, ``pole_out_time``, ``cue_start_time``), with ``sample_strength`` when the task has several.
The truth (``ground_truth.json``, ``reference_model.pt``) is written beside the dandiset, never read by the
analysis.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

# The layers of neurofit.models.recurrent.RecurrentNet (repeated so that the DAG can read the defaults without torch).
RECURRENT_LAYERS = ("input", "recurrent", "readout")
SIDE_LABEL = {"left": "lick left", "right": "lick right"}


@dataclass
class TrialSimulationSpec:
    n_trials: int = 160
    units_per_region: int = 16
    regions: dict[str, str] = field(default_factory=lambda: {"ALM": "recurrent", "vS1": "input"})  # region: layer
    network: dict[str, Any] = field(default_factory=lambda: {
        "architecture": "vanilla", "hidden": 32, "steps": 300, "task": "delayed_response",
        "task_settings": {"strengths": [0.5, 1.0], "jitter_ms": {"fixation": 300.0, "delay": 0.0}}})
    seed: int = 0
    iti_ms: float = 1000.0
    bad_fraction: float = 0.05
    baseline_hz: float = 2.0
    peak_hz: float = 30.0

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> TrialSimulationSpec:
        unknown = set(settings) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"simulate: unknown key(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        defaults = asdict(cls())
        spec = cls(**{**defaults, **settings, "network": {**defaults["network"], **settings.get("network", {})}})
        bad = {layer for layer in spec.regions.values() if layer not in RECURRENT_LAYERS}
        if bad:
            raise ValueError(f"simulate.regions: layers {sorted(bad)} are not network layers {list(RECURRENT_LAYERS)}")
        if spec.network.get("task", "delayed_response") != "delayed_response":
            raise ValueError("simulate.network.task: the trial simulator writes 000006-like delayed-response trials; "
                             "use task: delayed_response")
        return spec


def simulate_trials(spec: TrialSimulationSpec, out_dir: str | Path) -> dict[str, Any]:
    import torch

    from neurofit.models.train_recurrent import RecurrentSpec, save_recurrent, train_recurrent

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net_spec = RecurrentSpec.from_config({"seed": spec.seed, **spec.network})
    net, performance = train_recurrent(net_spec)
    net = net.cpu()
    task = net_spec.make_task()
    rng = np.random.default_rng(spec.seed + 1)
    dt = net_spec.dt_ms

    conditions = rng.choice(task.conditions, size=spec.n_trials)
    trials, layer_activity = [], {layer: [] for layer in set(spec.regions.values())}
    for condition in conditions:
        durations = task.sample_durations(rng)
        trial = task.trial(str(condition), durations, dt, rng)
        with torch.no_grad():
            out_layers = net(torch.as_tensor(trial.ob[:, None, :]))
        for layer in layer_activity:
            layer_activity[layer].append(out_layers[layer][:, 0].numpy())
        logits = out_layers["readout"][torch.as_tensor(trial.period == task.decision_period), 0].mean(0)
        trials.append((str(condition), durations, trial, int(logits[1:].argmax()) + 1))

    # A softplus readout per unit of each region's layer (standardised over all trials and times).
    rates_per_region: dict[str, list[np.ndarray]] = {}
    for region, layer in spec.regions.items():
        stacked = np.concatenate(layer_activity[layer])
        mean, sd = stacked.mean(0), stacked.std(0) + 1e-6
        weights = rng.normal(0, 1, (stacked.shape[1], spec.units_per_region)) / np.sqrt(stacked.shape[1])
        gains = rng.uniform(0.5, 1.0, spec.units_per_region)
        rates_per_region[region] = [
            spec.baseline_hz + spec.peak_hz * gains * np.log1p(np.exp(2.0 * ((a - mean) / sd) @ weights - 1.0)) / 3.0
            for a in layer_activity[layer]]

    rows, spikes = [], {(r, u): [] for r in spec.regions for u in range(spec.units_per_region)}
    start = 1.0
    for index, (condition, durations, trial, choice) in enumerate(trials):
        side, *strength = condition.split()
        sample_on = durations["fixation"] / 1000.0
        sample_off = sample_on + durations["sample"] / 1000.0
        cue = sample_off + durations["delay"] / 1000.0
        length = len(trial.period) * dt / 1000.0
        rows.append({"start_time": start, "stop_time": start + length, "type": SIDE_LABEL[side],
                     "response": "correct" if choice == trial.choice else "incorrect",
                     "is_good": int(rng.random() >= spec.bad_fraction), "pole_in_time": sample_on,
                     "pole_out_time": sample_off, "cue_start_time": cue,
                     **({"sample_strength": strength[0]} if strength else {})})
        step_starts = start + np.arange(len(trial.period)) * dt / 1000.0
        for region in spec.regions:
            rates = rates_per_region[region][index]  # (time, unit)
            counts = rng.poisson(rates * dt / 1000.0)
            for unit in range(spec.units_per_region):
                n = counts[:, unit]
                spikes[(region, unit)].append(np.repeat(step_starts, n) + rng.uniform(0, dt / 1000.0, n.sum()))
        start += length + spec.iti_ms / 1000.0

    dandiset = out / "dandiset"
    session = dandiset / "sub-simtrials" / "sub-simtrials_ses-1_ecephys.nwb"
    session.parent.mkdir(parents=True, exist_ok=True)
    trains = {key: np.sort(np.concatenate(parts)) for key, parts in spikes.items()}
    _write_nwb(session, spec, rows, trains)
    (dandiset / "dandiset.yaml").write_text(yaml.safe_dump({
        "identifier": "simtrials", "name": "neurofit simulated delayed-response task",
        "description": "Simulated ALM-like and vS1-like units driven by a task-trained RNN (ground truth known).",
        "license": ["spdx:CC0-1.0"], "version": "draft"}, sort_keys=False))
    model_path = out / "reference_model.pt"
    save_recurrent(net, net_spec, performance, model_path, out / "reference_performance.json")
    truth = {"region_layer": dict(spec.regions), "layer_order": list(RECURRENT_LAYERS),
             "reference_model": {**asdict(net_spec), "weights": model_path.name},
             "reference_accuracy": performance["accuracy"], "settings": asdict(spec)}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2))
    return truth


def _write_nwb(path: Path, spec: TrialSimulationSpec, rows: list[dict[str, Any]],
               trains: dict[tuple[str, int], np.ndarray]) -> None:
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject

    from neurofit.nwb_tables import intervals_table, units_table

    nwbfile = NWBFile(session_description="Simulated tactile delayed-response task",
                      identifier=f"simtrials-{spec.seed}",
                      session_start_time=datetime(2026, 1, 1, tzinfo=UTC), institution="neurofit",
                      experiment_description="neurofit simulated trial-structured dataset (ground truth known)")
    nwbfile.subject = Subject(subject_id="simtrials", species="Mus musculus", sex="U", age="P90D")
    device = nwbfile.create_device(name="simulated_probe", description="simulated silicon probe")
    groups = {region: nwbfile.create_electrode_group(name=f"probe_{region}", description=f"probe in {region}",
                                                     location=region, device=device) for region in spec.regions}
    for (region, _unit) in trains:
        # 000006 writes its locations as key-value strings; the reader parses them the same way.
        nwbfile.add_electrode(location=f"brain_region: {region}; cortical_layer: 5", group=groups[region],
                              x=0.0, y=0.0, z=0.0, imp=float("nan"), filtering="none")
    nwbfile.units = units_table(list(trains.values()), nwbfile.electrodes)  # unit i on electrode i
    descriptions = {"type": "instructed side (lick left / lick right)", "response": "the network's choice was correct",
                    "is_good": "1 = a usable trial", "pole_in_time": "sample onset, s from the trial start",
                    "pole_out_time": "sample offset, s from the trial start",
                    "cue_start_time": "go cue, s from the trial start", "sample_strength": "sample amplitude"}
    nwbfile.trials = intervals_table("trials", "experimental trials",
                                     {column: [row[column] for row in rows] for column in rows[0]}, descriptions)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
