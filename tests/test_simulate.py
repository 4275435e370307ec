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


def test_two_runs_write_identical_bytes(tmp_path):
    """Same settings, same files: fixed identifier, session start, file creation date and object ids."""
    from neurofit.simulate import SimulationSpec, simulate

    settings = {"n_stimuli": 16, "n_repeats": 2, "units_per_region": 3, "reference_epochs": 0}
    for run in ("a", "b"):
        simulate(SimulationSpec.from_config(settings), tmp_path / run)
    for name in ("dandiset/sub-sim/sub-sim_ses-1_ecephys.nwb", "dandiset/dandiset.yaml", "ground_truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = {**settings, "seed": 1}
    simulate(SimulationSpec.from_config(other), tmp_path / "c")
    nwb = "dandiset/sub-sim/sub-sim_ses-1_ecephys.nwb"
    assert (tmp_path / "a" / nwb).read_bytes() != (tmp_path / "c" / nwb).read_bytes()


def test_conv_readout_is_a_gaussian_receptive_field_times_feature_weights():
    from neurofit.simulate import readout_weights

    live = np.ones(8, dtype=bool)
    live[:5] = False  # dead channels are never read
    weights = readout_weights((8, 16, 16), 20, rf_sigma=0.1, channels_per_unit=2,
                              rng=np.random.default_rng(0), live=live)
    assert weights.shape == (20, 8, 16, 16)
    for unit in weights:
        channels = np.flatnonzero(np.abs(unit).sum(axis=(1, 2)) > 0)
        assert len(channels) == 2 and set(channels) <= {5, 6, 7}
        masks = unit[channels] / unit[channels].sum(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(masks[0], masks[1])  # one spatial mask, scaled per channel
        peak = np.unravel_index(masks[0].argmax(), masks[0].shape)
        assert all(3 <= p <= 12 for p in peak)  # centred in the middle half of the map
        assert masks[0][peak] < 0.5  # pooled over several positions, not one


def test_vector_readout_is_dense():
    from neurofit.simulate import readout_weights

    weights = readout_weights((32,), 5, rf_sigma=0.1, channels_per_unit=2, rng=np.random.default_rng(0))
    assert weights.shape == (5, 32) and (weights != 0).all()
