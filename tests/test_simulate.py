"""The simulated dandiset looks like a real vision recording and keeps its truth outside."""

from __future__ import annotations

import json

import numpy as np
import yaml
from pynwb import NWBHDF5IO


def test_layout_is_a_dandiset_with_truth_beside_it(simulated):
    dandiset = simulated / "dandiset"
    assert yaml.safe_load((dandiset / "dandiset.yaml").read_text())["identifier"] == "sim"
    assert [p.name for p in dandiset.rglob("*.nwb")] == ["sub-sim_ses-1_ecephys.nwb"]
    truth = json.loads((simulated / "ground_truth.json").read_text())
    assert truth["region_layer"] == {"V1": "conv1", "V4": "conv3", "IT": "fc"}
    assert not list(dandiset.rglob("ground_truth*")) and (simulated / "reference_model.pt").exists()


def test_nwb_holds_stimuli_presentations_and_units_by_region(simulated_nwb, small_simulation):
    n_stim, n_rep, n_units = (small_simulation[k] for k in ("n_stimuli", "n_repeats", "units_per_region"))
    with NWBHDF5IO(str(simulated_nwb), "r") as io:
        nwb = io.read()
        images = nwb.stimulus_template["natural_scenes"].images
        assert len(images) == n_stim
        table = nwb.intervals["natural_scenes_presentations"].to_dataframe()
        assert len(table) == n_stim * n_rep
        assert np.all(np.bincount(table["image_index"], minlength=n_stim) == n_rep)
        assert (table["stop_time"] > table["start_time"]).all() and table["start_time"].is_monotonic_increasing
        # Shuffled order: not the same sequence in every block of presentations.
        assert not np.array_equal(table["image_index"][:n_stim].values, table["image_index"][n_stim:2 * n_stim].values)
        units = nwb.units.to_dataframe()
        regions = [nwb.units["electrodes"][i]["location"].iloc[0] for i in range(len(units))]
        assert {r: regions.count(r) for r in set(regions)} == {"V1": n_units, "V4": n_units, "IT": n_units}
        spikes = nwb.units["spike_times"][0]
        assert np.all(np.diff(spikes) >= 0)


def test_units_respond_after_their_latency(simulated_nwb):
    with NWBHDF5IO(str(simulated_nwb), "r") as io:
        nwb = io.read()
        onsets = nwb.intervals["natural_scenes_presentations"]["start_time"][:]
        spikes = np.concatenate([nwb.units["spike_times"][i] for i in range(len(nwb.units))])
    relative = (spikes[:, None] - onsets[None, :]).ravel()
    before = np.sum((relative >= -0.03) & (relative < 0.0))  # 30 ms before onset: baseline only
    evoked = np.sum((relative >= 0.1) & (relative < 0.13))  # 30 ms inside every region's response
    assert evoked > 2 * before
