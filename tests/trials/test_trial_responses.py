"""Trial-aligned responses on the real DANDI:000006 session (one ALM unit) and on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from trials_testutil import ALM_RESPONSES

from neurofit.neural.filters import RowFilterError
from neurofit.neural.nwb import NWBContentError, open_nwb, read_intervals, read_units
from neurofit.neural.responses import window_counts
from neurofit.neural.trials import (
    TrialSpec,
    build_trial_dataset,
    condition_psth,
    epoch_times,
    pseudo_population_psth,
    read_trial_responses,
    smooth,
    split_half_trials,
)


def test_000006_trials_are_filtered_aligned_and_labelled(alm_nwb):
    spec = TrialSpec.from_config(ALM_RESPONSES)
    responses, summary = read_trial_responses(alm_nwb, spec)
    with open_nwb(alm_nwb) as nwbfile:
        table = read_intervals(nwbfile, alm_nwb, "trials")
        spikes = read_units(nwbfile, alm_nwb, "sort").spike_times[0]
    good = table[table["is_good"] == 1]
    assert summary["trials"] == 178 and summary["dropped_by_filter"] == 12 and summary["kept"] == len(good) == 166
    assert responses.dims == ("trial", "time", "neuroid") and responses.sizes["neuroid"] == 1
    assert set(responses["condition"].values) == {"lick left", "lick right"}
    assert (responses["condition"].values == good["type"].to_numpy().astype(str)).all()
    assert responses["region"].values.tolist() == ["ALM"]
    # 90 bins of 50 ms over [-3 s, 1.5 s) around the go cue, centred
    assert responses.sizes["time"] == 90 and np.isclose(responses["time"].values[0], -2.975)
    # Alignment: cue times are relative to each trial's start_time; count one trial's spikes by hand.
    row = good.iloc[10]
    cue = row["start_time"] + row["cue_start_time"]
    in_first_second = ((spikes >= cue) & (spikes < cue + 1.0)).sum()
    counted = responses.isel(trial=10).sel(time=slice(0, 1.0)).values.sum() * 0.05
    assert np.isclose(counted, in_first_second)
    # Events relative to the go cue: the pole comes in about 2.5 s and out 1.5 s before it.
    epochs = epoch_times(responses)
    assert abs(epochs["pole_in_time"] + 2.5) < 0.1 and abs(epochs["pole_out_time"] + 1.5) < 0.05


def test_000006_absolute_times_give_the_same_counts(alm_nwb, tmp_path):
    relative, _ = read_trial_responses(alm_nwb, TrialSpec.from_config(ALM_RESPONSES))
    with open_nwb(alm_nwb) as nwbfile:
        table = read_intervals(nwbfile, alm_nwb, "trials")
    spikes_spec = TrialSpec.from_config({**ALM_RESPONSES, "times": "absolute"})
    # An absolute alignment column made from the relative one must bin the same spikes.
    good = table[table["is_good"] == 1]
    align = (good["start_time"] + good["cue_start_time"]).to_numpy()
    with open_nwb(alm_nwb) as nwbfile:
        spikes = read_units(nwbfile, alm_nwb, "sort").spike_times[0]
    counts = window_counts([spikes], align, spikes_spec.bin_edges_s())[:, 0, :]
    assert np.allclose(counts / 0.05, relative.values[:, :, 0])


def test_000006_condition_psth_and_split_half_ceiling(alm_nwb):
    responses, _ = read_trial_responses(alm_nwb, TrialSpec.from_config(ALM_RESPONSES))
    psth = condition_psth(responses, sd_ms=50)
    assert psth.dims == ("condition", "time", "neuroid") and list(psth["condition"].values) == ["lick left",
                                                                                                  "lick right"]
    left = responses.isel(trial=responses["condition"].values == "lick left").mean("trial")
    assert np.allclose(condition_psth(responses).sel(condition="lick left").values, left.values, atol=1e-4)
    reliability = split_half_trials(responses, n_splits=5, seed=0)
    assert reliability.shape == (5, 1) and 0.3 < reliability.mean() <= 1.0
    # The ceiling is seeded: the same seed gives the same splits.
    assert np.allclose(reliability, split_half_trials(responses, n_splits=5, seed=0))


def test_000006_two_sessions_pool_into_a_pseudo_population(alm_nwb):
    spec = TrialSpec.from_config(ALM_RESPONSES)
    first, _ = read_trial_responses(alm_nwb, spec, session="a")
    second, _ = read_trial_responses(alm_nwb, spec, session="b")
    second = second.isel(trial=second["condition"].values == "lick left")  # a session with one condition only
    pooled = pseudo_population_psth([first, second], min_trials=4)
    assert pooled.sizes["neuroid"] == 2 and list(pooled["condition"].values) == ["lick left"]
    assert list(pooled["session"].values) == ["a", "b"]
    dataset, summary = build_trial_dataset([first, first.assign_coords(session=("neuroid", ["c"]))],
                                           spec, n_splits=3)
    assert dataset["psth"].sizes == {"condition": 2, "time": 90, "neuroid": 2}
    assert dataset["reliability"].shape == (3, 2) and summary["neuroids_per_region"] == {"ALM": 2}
    assert set(summary["epochs_s"]) == {"cue_start_time", "pole_in_time", "pole_out_time"}


def test_bad_trial_settings_name_the_key_and_the_fix(alm_nwb):
    with pytest.raises(NWBContentError, match="no column 'trial_type'.*responses.conditions"):
        read_trial_responses(alm_nwb, TrialSpec.from_config({**ALM_RESPONSES, "conditions": ["trial_type"]}))
    with pytest.raises(NWBContentError, match="responses.align"):
        read_trial_responses(alm_nwb, TrialSpec.from_config({**ALM_RESPONSES, "align": "go_time"}))
    with pytest.raises(RowFilterError, match="responses.filter"):
        read_trial_responses(alm_nwb, TrialSpec.from_config({**ALM_RESPONSES, "filter": "__import__('os')"}))
    with pytest.raises(NWBContentError, match="no units in regions"):
        read_trial_responses(alm_nwb, TrialSpec.from_config({**ALM_RESPONSES, "regions": ["M1"]}))
    with pytest.raises(ValueError, match="times"):
        TrialSpec.from_config({**ALM_RESPONSES, "times": "since_cue"})
    with pytest.raises(ValueError, match="unknown key"):
        TrialSpec.from_config({**ALM_RESPONSES, "query": "is_good == 1"})


def test_smoothing_keeps_the_mean_of_a_constant_and_spreads_a_spike():
    time = np.arange(40) * 0.05
    flat = xr.DataArray(np.full((40, 1), 5.0), dims=("time", "neuroid"), coords={"time": time})
    assert np.allclose(smooth(flat, 100).values, 5.0)  # edges renormalised, not pulled to zero
    pulse = flat.copy(data=np.eye(40)[20][:, None])
    smoothed = smooth(pulse, 100).values[:, 0]
    assert smoothed.argmax() == 20 and smoothed[20] < 1 and smoothed[18] > 0
    assert np.isclose(smoothed.sum(), 1, atol=1e-3)


def test_split_halves_give_the_reliability_and_each_regions_geometry_ceiling(alm_nwb):
    from neurofit.encoding.ceiling import spearman_brown
    from neurofit.encoding.ridge import pearson_columns
    from neurofit.encoding.timecourse import geometry_ceilings, procrustes_similarity, rsa_similarity
    from neurofit.neural.trials import split_halves

    spec = TrialSpec.from_config(ALM_RESPONSES)
    first, _ = read_trial_responses(alm_nwb, spec, session="a")
    labels = first["condition"].values
    # 87 and 79 trials: each condition's first trial dropped, so that its halves hold every other trial once
    first = first.isel(trial=np.setdiff1d(np.arange(len(labels)), [np.flatnonzero(labels == c)[0] for c in
                                                                   ("lick left", "lick right")]))
    labels = first["condition"].values
    halves = split_halves(first, n_splits=3, seed=0)
    assert halves.shape == (3, 2, 2, 90, 1)
    for c, condition in enumerate(["lick left", "lick right"]):  # each half the mean of its half of the trials
        n = (labels == condition).sum()
        total = first.isel(trial=labels == condition).sum("trial").transpose("time", "neuroid").values
        assert n % 2 == 0 and np.allclose(halves[0, :, c].sum(0) * (n // 2), total, atol=1e-6)
    a, b = halves[1, 0].reshape(-1, 1), halves[1, 1].reshape(-1, 1)
    assert np.allclose(split_half_trials(first, n_splits=3, seed=0)[1], spearman_brown(pearson_columns(a, b)))
    # two units of a region side by side: its geometry in one half against the other, mean over the splits
    both = np.concatenate([halves, split_halves(first, n_splits=3, seed=1)], axis=-1)  # a second, noisier unit
    ceilings = geometry_ceilings(both, shape_alphas=(0.5,))
    assert set(ceilings) == {"procrustes", "rsa_condition_time", "shape_a0.5"}
    for name, fn in (("procrustes", procrustes_similarity), ("rsa_condition_time", rsa_similarity)):
        expected = np.mean([spearman_brown(fn(h[0].reshape(-1, 2), h[1].reshape(-1, 2))) for h in both])
        assert np.isclose(ceilings[name], expected, rtol=1e-12), name
    dataset, _ = build_trial_dataset([first, first.assign_coords(session=("neuroid", ["c"]))], spec, n_splits=3)
    assert dataset["psth_halves"].dims == ("split", "half", "condition", "time", "neuroid")
    assert np.allclose(dataset["psth_halves"].values[..., 0], halves[..., 0], atol=1e-5)  # float32 as stored
