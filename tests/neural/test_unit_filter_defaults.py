"""Silent units and units without stimulus-driven variance are dropped by default, and counted."""

from __future__ import annotations

import numpy as np

from neurofit.neural.responses import DEFAULT_UNIT_FILTERS, ResponseSpec, build_responses, manifest_filter_entries

ONSETS = np.arange(40) + 1.0
INDEX = np.tile(np.arange(10), 4)


def spikes_per_presentation(counts):
    """Spike times: ``counts[i]`` spikes 100-110 ms after onset ``i`` (inside the 70-170 ms window)."""
    return sorted(onset + 0.1 + 0.001 * k for onset, n in zip(ONSETS, counts, strict=True) for k in range(n))


def write(tmp_path, nwb_writer, images):
    tuned = spikes_per_presentation(INDEX % 5)  # the same count for an image on every repeat
    flat = spikes_per_presentation(np.full(40, 2))  # fires, but the same for every image: no reliability
    units = [{"spike_times": tuned, "location": "V1"}, {"spike_times": [], "location": "V1"},
             {"spike_times": flat, "location": "V1"}, {"spike_times": tuned, "location": "IT"}]
    return nwb_writer(tmp_path / "f.nwb", units=units,
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX}},
                      templates={"scenes": images(10)})


def test_silent_and_unreliable_units_are_dropped_by_default(tmp_path, nwb_writer, images):
    path = write(tmp_path, nwb_writer, images)
    result = build_responses([path], ResponseSpec.from_config({}))
    assert result.responses["unit_id"].values.tolist() == [0, 3]
    steps = {f["filter"]: (f["setting"], f["kept"], f["dropped"]) for f in result.summary["filters"]}
    assert steps == {"min_rate_hz": (DEFAULT_UNIT_FILTERS["min_rate_hz"], 3, 1),
                     "min_reliability": (DEFAULT_UNIT_FILTERS["min_reliability"], 2, 1)}
    entries = manifest_filter_entries(result.summary)
    assert entries["units"] == {"V1": {"kept": 1, "dropped": 2, "dropped by min_rate_hz": 1,
                                       "dropped by min_reliability": 1},
                                "IT": {"kept": 1, "dropped": 0}}
    assert [f["name"] for f in entries["unit_filters"]] == ["min_rate_hz", "min_reliability"]


def test_null_turns_a_default_filter_off(tmp_path, nwb_writer, images):
    path = write(tmp_path, nwb_writer, images)
    spec = ResponseSpec.from_config({"units": {"min_rate_hz": None, "min_reliability": None}})
    assert build_responses([path], spec).responses.sizes["neuroid"] == 4


def test_ophys_gets_no_rate_filter_by_default():
    assert "min_rate_hz" not in ResponseSpec.from_config({"adapter": "ophys"}).units
