"""A simulated brain with known ground truth, written as a DANDI-layout dandiset.

Each region's units are a noisy nonlinear readout of one layer of a hidden reference network
(early layer -> V1, middle -> V4, late -> IT). The stimuli are procedurally generated object images
shown several times each in shuffled order; spikes are Poisson with a response latency. The truth
(region -> layer map, reference model) is written beside the dandiset, never inside it.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from neurofit.images import CATEGORIES, render_objects
from neurofit.models.train import ModelSpec, train
from neurofit.models.weights import save_weights
from neurofit.simulate_defaults import simulation_settings

SESSION_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class SimulationSpec:
    """Settings of the simulated dataset (the ``simulate:`` block of a dataset in config);
    defaults in :mod:`neurofit.simulate_defaults`."""

    n_stimuli: int
    n_repeats: int
    units_per_region: int
    image_size: int
    clutter: float  # background contrast of the stimuli
    clutter_exponent: float  # background amplitude spectrum 1/f**clutter_exponent
    regions: dict[str, str]
    architecture: str
    width: int
    reference_epochs: int
    seed: int
    stimulus_ms: float
    gap_ms: float
    latency_ms: dict[str, float]
    response_ms: float
    baseline_hz: float
    peak_hz: float
    gain_noise: float  # trial-to-trial multiplicative (log-normal sd) variability
    rf_sigma: dict[str, float]  # per region: receptive field sigma as a fraction of the layer map's side
    channels_per_unit: int  # feature channels a conv-layer unit reads
    nonlinearity: float  # slope of the softplus on the z-scored drive (0: linear)
    threshold: float  # offset of the softplus (negative: more rectified)

    @classmethod
    def from_config(cls, entry: dict[str, Any] | None = None) -> SimulationSpec:
        return cls(**simulation_settings(entry or {}))


def gaussian_mask(height: int, width: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """A 2-D Gaussian over a ``height x width`` map (centre and sigma in map pixels), summing to 1."""
    ys, xs = np.arange(height)[:, None], np.arange(width)[None, :]
    mask = np.exp(-((ys - centre[0]) ** 2 + (xs - centre[1]) ** 2) / (2 * sigma**2))
    return mask / mask.sum()


def readout_weights(shape: tuple[int, ...], n_units: int, rf_sigma: float, channels_per_unit: int,
                    rng: np.random.Generator, live: np.ndarray | None = None) -> np.ndarray:
    """Each unit's linear readout of one layer, ``(unit, *shape)``.

    A conv layer ``(channel, y, x)``: a Gaussian spatial receptive field (sigma ``rf_sigma`` of
    the map's side, centred in the middle half of the map) times feature weights on
    ``channels_per_unit`` channels (among the ``live`` ones, those that vary across stimuli), the
    factorised readout of system identification (Klindt et al. 2017). A vector layer: a dense
    random mixture."""
    if len(shape) == 3:
        channels, height, width = shape
        weights = np.zeros((n_units, channels, height, width))
        pool = np.flatnonzero(live) if live is not None and live.any() else np.arange(channels)
        for unit in range(n_units):
            centre = (rng.uniform(height / 4, 3 * height / 4 - 1), rng.uniform(width / 4, 3 * width / 4 - 1))
            mask = gaussian_mask(height, width, centre, max(rf_sigma * height, 0.5))
            chosen = rng.choice(pool, size=min(channels_per_unit, len(pool)), replace=False)
            weights[unit, chosen] = rng.standard_normal(len(chosen))[:, None, None] * mask
        return weights
    return rng.standard_normal((n_units, *shape)) / np.sqrt(np.prod(shape))


def readout_drive(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Z-scored drives ``(stimulus, unit)`` of ``features`` ``(stimulus, ...)`` through ``weights``."""
    drive = features.reshape(len(features), -1) @ weights.reshape(len(weights), -1).T
    drive = drive - drive.mean(0)
    return drive / (drive.std(0) + 1e-9)


def reference_activations(model: Any, images: np.ndarray, layers: list[str], image_size: int) -> dict[str, np.ndarray]:
    """Outputs of ``layers`` of ``model`` for the stimuli, unflattened (a conv layer keeps its
    ``(channel, y, x)`` map), preprocessed as the features stage does."""
    import torch

    from neurofit.features import preprocess

    model.eval()
    activations: dict[str, np.ndarray] = {}
    hooks = [getattr(model, layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: activations.__setitem__(layer, o.detach().cpu().numpy().astype(np.float64)))
        for layer in dict.fromkeys(layers)]
    try:
        with torch.no_grad():
            model(preprocess(images, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    return activations


def region_rates(activations: dict[str, np.ndarray], spec: SimulationSpec,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Evoked rates (Hz) per region ``(stimulus, unit)``: a softplus of each unit's readout drive
    of its region's layer, scaled to a peak rate with a per-unit gain."""
    rates = {}
    for region, layer in spec.regions.items():
        features = activations[layer]
        live = features.std(axis=(0, 2, 3)) > 0 if features.ndim == 4 else None  # ReLU channels can be dead
        weights = readout_weights(features.shape[1:], spec.units_per_region, spec.rf_sigma.get(region, 0.1),
                                  spec.channels_per_unit, rng, live)
        drive = readout_drive(features, weights)
        gain = rng.uniform(0.5, 1.0, spec.units_per_region)
        rates[region] = spec.peak_hz * gain * np.log1p(np.exp(spec.nonlinearity * drive + spec.threshold)) / 3.0
    return rates


def simulate(spec: SimulationSpec, out_dir: str | Path) -> dict[str, Any]:
    """Write ``dandiset/`` (dandiset.yaml + one NWB session), ``ground_truth.json`` and
    ``reference_model.pt`` under ``out_dir``; returns the ground truth."""
    from pynwb import NWBHDF5IO

    out = Path(out_dir)
    rng = np.random.default_rng(spec.seed)
    stimuli = render_objects(spec.n_stimuli, spec.image_size, seed=spec.seed + 1, clutter=spec.clutter,
                             clutter_exponent=spec.clutter_exponent)
    # The hidden network is trained briefly on the object task, so its late layers carry category
    # information that a random network of the same architecture lacks (as in the ventral stream).
    model, _ = train(ModelSpec(architecture=spec.architecture, objective="supervised" if spec.reference_epochs
                               else "untrained", epochs=spec.reference_epochs, seed=spec.seed,
                               image_size=spec.image_size, width=spec.width),
                     evaluate_heldout=False)  # its scores are not used here
    images = np.round(stimuli.images * 255).astype(np.uint8)  # the bytes the NWB file stores
    activations = reference_activations(model, images, list(spec.regions.values()), spec.image_size)
    rates = region_rates(activations, spec, rng)

    order = np.concatenate([rng.permutation(spec.n_stimuli) for _ in range(spec.n_repeats)])
    period = (spec.stimulus_ms + spec.gap_ms) / 1000.0
    onsets = 1.0 + np.arange(len(order)) * period
    duration = onsets[-1] + period + 1.0

    spike_trains: list[np.ndarray] = []
    unit_regions: list[str] = []
    for region, unit_rates in rates.items():
        latency = spec.latency_ms.get(region, 50.0) / 1000.0
        window = spec.response_ms / 1000.0
        for unit in range(unit_rates.shape[1]):
            trial_gain = rng.lognormal(0.0, spec.gain_noise, len(order))
            evoked = rng.poisson(unit_rates[order, unit] * trial_gain * window)
            starts = np.repeat(onsets + latency, evoked)
            evoked_times = starts + rng.uniform(0, window, evoked.sum())
            background = rng.uniform(0, duration, rng.poisson(spec.baseline_hz * duration))
            spike_trains.append(np.sort(np.concatenate([evoked_times, background])))
            unit_regions.append(region)

    dandiset = out / "dandiset"
    session = dandiset / "sub-sim" / "sub-sim_ses-1_ecephys.nwb"
    session.parent.mkdir(parents=True, exist_ok=True)
    nwbfile = _nwbfile(spec, images, stimuli.labels, order, onsets, spike_trains, unit_regions)
    with NWBHDF5IO(str(session), "w") as io:
        io.write(nwbfile)
    (dandiset / "dandiset.yaml").write_text(yaml.safe_dump({
        "identifier": "sim",
        "name": "neurofit simulated ventral stream",
        "description": "Simulated V1/V4/IT single units responding to procedurally generated objects.",
        "license": ["spdx:CC0-1.0"],
        "version": "draft",
    }, sort_keys=False))

    model_path = out / "reference_model.pt"
    save_weights(model, model_path)
    truth = {
        "region_layer": dict(spec.regions),
        "layer_order": list(model.feature_layers),
        "reference_model": {"architecture": spec.architecture, "width": spec.width, "epochs": spec.reference_epochs,
                            "image_size": spec.image_size, "seed": spec.seed, "weights": model_path.name},
        "settings": asdict(spec),
    }
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2))
    return truth


def _nwbfile(spec: SimulationSpec, images: np.ndarray, labels: np.ndarray, order: np.ndarray,
             onsets: np.ndarray, spike_trains: list[np.ndarray], unit_regions: list[str]):
    from pynwb import NWBFile
    from pynwb.base import Images
    from pynwb.file import Subject
    from pynwb.image import GrayscaleImage

    from neurofit.nwb_tables import intervals_table, units_table

    nwbfile = NWBFile(
        session_description="Simulated passive viewing of procedurally generated objects",
        identifier=f"neurofit-sim-{spec.seed}",
        session_start_time=SESSION_START,
        file_create_date=[SESSION_START],  # not the wall clock: the same settings write the same bytes
        experiment_description="neurofit simulated ventral stream (ground truth known)",
        institution="neurofit",
    )
    nwbfile.subject = Subject(subject_id="sim", species="Macaca mulatta", sex="U", age="P5Y")
    device = nwbfile.create_device(name="simulated_probe", description="simulated array")
    groups = {region: nwbfile.create_electrode_group(name=f"array_{region}", description=f"array in {region}",
                                                     location=region, device=device)
              for region in dict.fromkeys(unit_regions)}
    for region in unit_regions:
        nwbfile.add_electrode(location=region, group=groups[region], x=0.0, y=0.0, z=0.0,
                              imp=float("nan"), filtering="none")
    nwbfile.units = units_table(spike_trains, nwbfile.electrodes)  # unit i on electrode i

    names = [f"image_{i:04d}" for i in range(len(images))]
    template = Images(
        name="natural_scenes",
        images=[GrayscaleImage(name=name, data=img, description=CATEGORIES[label])
                for name, img, label in zip(names, images, labels, strict=True)],
        description="procedurally generated object images; image_index indexes them in order",
    )
    nwbfile.add_stimulus_template(template)
    nwbfile.add_time_intervals(intervals_table(
        "natural_scenes_presentations", "one row per image presentation",
        {"start_time": onsets, "stop_time": onsets + spec.stimulus_ms / 1000.0, "image_index": order.astype(np.int64),
         "category": np.asarray(CATEGORIES, dtype=object)[labels[order]]},
        descriptions={"image_index": "index of the image in stimulus_template natural_scenes",
                      "category": "object category of the image"}))
    _fix_object_ids(nwbfile, spec.seed)
    return nwbfile


def _fix_object_ids(nwbfile: Any, seed: int) -> None:
    """Replace the random UUID4 that hdmf gives every container with one drawn from ``seed`` (in
    the file's own traversal order), so two runs with the same settings write identical bytes."""
    rng = random.Random(seed)
    for container in nwbfile.all_children():
        # hdmf keeps the id in a name-mangled attribute and offers only a random regeneration.
        container._AbstractContainer__object_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    nwbfile.all_children()  # rebuilds the file's index of objects by id
