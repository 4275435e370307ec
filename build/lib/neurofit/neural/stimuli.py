"""Which ``responses:`` settings decide a dataset's stimulus images (torch- and NWB-free, so the
Snakefile reads it at DAG-build time).

The stimuli are a job of their own, so feature extraction (which reads only the images) does not
rerun when a setting of the neural responses alone changes (the window, bins, regions, unit
filters). The list names what does *not* decide the images: a new ``responses`` key counts as
deciding them until it is added here, so a forgotten key reruns too much, never too little.
"""

from __future__ import annotations

from typing import Any

RESPONSE_ONLY_KEYS = frozenset({
    "adapter",  # spikes or ΔF/F: the presentations and images are read the same way
    "window_ms", "bin_ms",
    "location_key", "region_map", "regions",
    "units", "unsorted_spike_times", "ophys_series", "reliability",
})


def stimulus_settings(responses: dict[str, Any]) -> dict[str, Any]:
    """The part of a dataset's ``responses`` block that decides which images, and how they are stacked."""
    return {key: value for key, value in responses.items() if key not in RESPONSE_ONLY_KEYS}
