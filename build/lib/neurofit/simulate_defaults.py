"""Default simulator settings, torch-free (the DAG needs them to name files)."""

from __future__ import annotations

from typing import Any

from neurofit.models.catalog import layer_names

DEFAULTS: dict[str, Any] = {
    "n_stimuli": 96,
    "n_repeats": 6,
    "units_per_region": 24,
    "image_size": 32,
    # Stimulus backgrounds (images.render_objects): clutter contrast and the exponent of its 1/f**e
    # amplitude spectrum, as the object task's images have them. The default config sets 1.0 and 0.5
    # so that V1 can tell the hidden network from a random one (README, "What the default run recovers").
    "clutter": 0.35,
    "clutter_exponent": 1.0,
    "regions": {"V1": "conv1", "V4": "conv3", "IT": "fc"},
    "architecture": "alexnet_small",
    "width": 16,
    "reference_epochs": 3,
    "seed": 0,
    "stimulus_ms": 250.0,
    "gap_ms": 250.0,
    "latency_ms": {"V1": 40.0, "V4": 60.0, "IT": 80.0},
    "response_ms": 200.0,
    "baseline_hz": 4.0,
    "peak_hz": 150.0,
    "gain_noise": 0.25,
    # Readout of a conv layer: Gaussian receptive field (sigma as a fraction of the map's side, per
    # region; 0.1 for a region not listed) times weights on a few channels.
    "rf_sigma": {"V1": 0.08, "V4": 0.15},
    "channels_per_unit": 3,
    # rate = peak_hz * gain * softplus(nonlinearity * drive + threshold) / 3: mildly rectified, so a
    # linear readout of the true layer can reach the noise ceiling: for a Gaussian drive the rate is
    # 99.1% linear in it (r^2; 0.7 and 0.5 gave 97.0%, a 3% shortfall no encoding model could close).
    "nonlinearity": 0.5,
    "threshold": 1.0,
}


def simulation_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """The defaults with ``overrides``; ``regions`` in hierarchy order (by the depth of the layer each
    region reads, then by name), so the order the config lists them in changes nothing."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown simulate settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **overrides}
    depth = {layer: i for i, layer in enumerate(layer_names(settings["architecture"], settings))}
    settings["regions"] = dict(sorted(settings["regions"].items(),
                                      key=lambda item: (depth.get(item[1], len(depth)), item[0])))
    return settings
