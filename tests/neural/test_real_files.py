"""The real DANDI files in tests/data/real_nwb: regions, tables and columns read right; counts per trial
equal a direct computation from the spike times. The files are only read."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from neurofit.neural.nwb import NWBContentError, intervals_tables, open_nwb, read_intervals, read_units
from neurofit.neural.regions import parse_location
from neurofit.neural.responses import ResponseSpec, build_responses, build_stimuli
from neurofit.neural.stimuli import stimulus_settings


def direct_counts(path, onsets, start_s, stop_s):
    """Counts per (trial, unit) straight from pynwb's spike times, with boolean masks."""
    with open_nwb(path) as nwbfile:
        trains = [np.sort(np.asarray(nwbfile.units["spike_times"][i])) for i in range(len(nwbfile.units))]
    return np.array([[((t >= o + start_s) & (t < o + stop_s)).sum() for t in trains] for o in onsets])


def image_folder(folder, names):
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((4, 4), i % 256, dtype=np.uint8)).save(folder / name, format="PNG")
    return folder


def test_000207_regions_from_bytes_electrode_locations(file_000207):
    with open_nwb(file_000207) as nwbfile:
        units = read_units(nwbfile, file_000207)
        tables = intervals_tables(nwbfile)
        recognition = read_intervals(nwbfile, file_000207, "recognition_table")
        encoding = read_intervals(nwbfile, file_000207, "encoding_table")
    regions = [parse_location(loc) for loc in units.location]
    assert len(units.unit_id) == 35
    assert {r: regions.count(r) for r in set(regions)} == {"hippocampus_right": 25, "amygdala_right": 10}
    assert sorted(tables) == ["encoding_table", "recognition_table", "timediscrimination_table"]
    assert "trials" not in tables
    assert len(encoding) == 90 and len(recognition) == 180
    assert encoding["Clip_name"].iloc[0] == "NB_24.mp4"  # stored as bytes, decoded
    assert recognition["frameName"].iloc[0] == "SB_5_frameB_foil.png"
    assert {"stimCategory", "Clip_name", "boundary1_time"} <= set(encoding.columns)


def test_000207_counts_per_trial_equal_direct_computation(file_000207, tmp_path):
    with open_nwb(file_000207) as nwbfile:
        table = read_intervals(nwbfile, file_000207, "recognition_table")
    folder = image_folder(tmp_path / "frames", sorted(set(table["frameName"])))
    settings = {"adapter": "table_folder", "table": "recognition_table", "stimulus_column": "frameName",
                "stimuli": {"path": str(folder)}, "regions": ["hippocampus_right", "amygdala_right"], "bin_ms": 50,
                "units": {"min_rate_hz": None, "min_reliability": None},
                "window_ms": [0, 1000]}
    result = build_responses([file_000207], ResponseSpec.from_config(settings))
    r = result.responses
    assert r.sizes == {"presentation": 180, "neuroid": 35}
    np.testing.assert_array_equal(r.values, direct_counts(file_000207, table["start_time"].to_numpy(), 0.0, 1.0))
    assert r.values.sum() > 1000  # the test sees real spikes
    assert r["stimulus_id"].values.tolist() == table["frameName"].tolist()
    assert r["repeat"].values.max() == 3  # a frame is shown up to 4 times
    assert (r["region"].values == "hippocampus_right").sum() == 25
    assert np.isfinite(r["reliability"].values).sum() > 30
    np.testing.assert_array_equal(result.binned.sum("time_bin").values, r.values)
    assert result.stimuli.sizes["stimulus"] == 134
    # the stimuli job reads the same images without the units or the response-only settings
    alone = build_stimuli([file_000207], ResponseSpec.from_config(stimulus_settings(settings)))
    xr.testing.assert_identical(alone, result.stimuli)


def test_000207_video_clips_are_refused_with_a_clear_error(file_000207, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    with open_nwb(file_000207) as nwbfile:
        for clip in set(read_intervals(nwbfile, file_000207, "encoding_table")["Clip_name"]):
            (folder / clip).write_bytes(b"")
    spec = ResponseSpec.from_config({"adapter": "table_folder", "table": "encoding_table",
                                     "stimulus_column": "Clip_name", "stimuli": {"path": str(folder)}})
    with pytest.raises(NWBContentError, match=r"\.mp4: not an image file.*videos must be converted"):
        build_responses([file_000207], spec, ceiling=False)


def test_000006_key_value_location_through_electrodes_index(file_000006):
    with open_nwb(file_000006) as nwbfile:
        units = read_units(nwbfile, file_000006, unsorted="sort")
        trials = read_intervals(nwbfile, file_000006, "trials")
        assert type(nwbfile.units["electrodes"]).__name__ == "VectorIndex"
    assert units.unit_id.tolist() == [1001]
    assert units.location[0].startswith("brain_region: ALM; brain_subregion: N/A; cortical_layer: 5")
    assert parse_location(units.location[0]) == "ALM"
    assert parse_location(units.location[0], key="hemisphere") == "left"
    assert units.columns["quality"].tolist() == ["Excellent"]
    assert units.n_unsorted == 1
    assert len(trials) == 178
    assert {"type", "response", "is_good", "pole_in_time"} <= set(trials.columns)


def test_000006_unsorted_spike_times_are_an_error_unless_sorting_is_asked(file_000006):
    with open_nwb(file_000006) as nwbfile, pytest.raises(NWBContentError, match=r"sub-anm369963.*unit 1001.*not "
                                                                                r"sorted.*unsorted_spike_times"):
        read_units(nwbfile, file_000006)


def test_000006_counts_per_trial_equal_direct_computation(file_000006, tmp_path):
    folder = image_folder(tmp_path / "types", ["lick left.png", "lick right.png"])
    spec = ResponseSpec.from_config({"adapter": "table_folder", "table": "trials", "stimulus_column": "type",
                                     "query": "is_good == 1", "stimuli": {"path": str(folder), "pattern": "{id}.png"},
                                     "unsorted_spike_times": "sort", "window_ms": [0, 3000], "regions": ["ALM"],
                                     "units": {"quality": {"column": "quality", "keep": ["Excellent"]},
                                               "min_rate_hz": None, "min_reliability": None}})
    result = build_responses([file_000006], spec, ceiling=False)  # two trial types: too few for a ceiling
    with open_nwb(file_000006) as nwbfile:
        trials = read_intervals(nwbfile, file_000006, "trials").query("is_good == 1")
    r = result.responses
    assert r.sizes == {"presentation": 166, "neuroid": 1}
    np.testing.assert_array_equal(r.values, direct_counts(file_000006, trials["start_time"].to_numpy(), 0.0, 3.0))
    assert r.values.sum() > 100
    assert r["region"].values.tolist() == ["ALM"] and r["unit_id"].values.tolist() == [1001]
    assert set(r["stimulus_id"].values) == {"lick left", "lick right"}
    assert result.summary["files"][0]["unsorted_units_sorted"] == 1
    assert [f["filter"] for f in result.summary["filters"]] == ["region", "quality"]
