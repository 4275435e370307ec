"""Spike counts in half-open windows equal the known truth exactly, edges included; time bins;
repeats; split-half reliability."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurofit.encoding.ceiling import spearman_brown
from neurofit.neural.reliability import RepeatsError, split_half_reliability
from neurofit.neural.repeats import average_repeats
from neurofit.neural.responses import (
    ResponseSpec,
    build_responses,
    repeat_index,
    spike_counts,
    window_counts,
)


def test_counts_on_window_edges_follow_the_half_open_rule():
    onsets = np.array([1.0, 2.0, 3.5])
    # Spikes written as decimal literals, as a file would store them: on the start edge (in),
    # on the stop edge (out), just inside and just outside each edge.
    spikes = [np.sort([1.07, 1.17, 1.1699, 1.0699, 2.07, 2.07, 2.12, 3.57, 3.67, 3.6699999])]
    counts = spike_counts(spikes, onsets, 0.070, 0.170)
    assert counts[:, 0].tolist() == [2, 3, 2]


def test_counts_match_brute_force_on_random_trains():
    rng = np.random.default_rng(3)
    trains = [np.sort(rng.uniform(0, 50, rng.integers(0, 400))) for _ in range(7)]
    onsets = np.sort(rng.uniform(0, 49, 60))
    counts = spike_counts(trains, onsets, 0.05, 0.3)
    truth = np.array([[((t >= o + 0.05) & (t < o + 0.3)).sum() for t in trains] for o in onsets])
    np.testing.assert_array_equal(counts, truth)


def test_bins_tile_the_window_and_sum_to_its_count():
    onsets = np.array([10.0])
    spikes = [np.array([10.07, 10.1199, 10.12, 10.169, 10.17])]
    binned = window_counts(spikes, onsets, np.array([70.0, 120.0, 170.0]) / 1000.0)
    assert binned[0, 0].tolist() == [2, 2]  # 10.12 opens the second bin; 10.17 is outside


def test_generated_file_counts_equal_truth_through_the_adapter(tmp_path, nwb_writer, images):
    onsets = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    index = [0, 1, 2, 0, 1, 2]
    # Unit a: 1 spike at the start edge of every window (in) and 1 on the stop edge (out);
    # unit b: image-dependent counts: image i -> i + 1 spikes inside, 1 before the window.
    unit_a = sorted([o + 0.07 for o in onsets] + [o + 0.17 for o in onsets])
    unit_b = sorted([o + 0.08 + 0.01 * k for o, i in zip(onsets, index, strict=True) for k in range(i + 1)]
                    + [o + 0.069 for o in onsets])
    path = nwb_writer(tmp_path / "sub-1" / "sub-1_ses-1.nwb",
                      units=[{"spike_times": unit_a, "location": "V1"}, {"spike_times": unit_b, "location": "IT"}],
                      tables={"presentations": {"start_time": onsets, "image_index": index}},
                      templates={"scenes": images(3)})
    spec = ResponseSpec.from_config({"table": "presentations", "bin_ms": 50,
                                     "units": {"min_rate_hz": None, "min_reliability": None}})
    result = build_responses([path], spec, ceiling=False)
    r = result.responses
    assert r.dims == ("presentation", "neuroid")
    assert r.sel(neuroid=0).values.tolist() == [1] * 6
    assert r.sel(neuroid=1).values.tolist() == [i + 1 for i in index]
    assert r["stimulus_id"].values.tolist() == ["img0", "img1", "img2"] * 2
    assert r["repeat"].values.tolist() == [0, 0, 0, 1, 1, 1]
    assert r["region"].values.tolist() == ["V1", "IT"]
    assert r["unit_id"].values.tolist() == [0, 1]
    assert set(r["session"].values) == {"sub-1_ses-1"}
    np.testing.assert_array_equal(result.binned.sum("time_bin").values, r.values)
    assert result.binned["bin_start_ms"].values.tolist() == [70.0, 120.0]
    mean = average_repeats(r)
    assert mean.dims == ("stimulus", "neuroid") and mean.sel(neuroid=1).values.tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(result.stimuli.values, np.stack(list(images(3).values())) / 255.0, atol=1e-6)


def test_repeat_index_counts_each_stimulus_separately():
    assert repeat_index(np.array(["a", "b", "a", "a", "b"])).tolist() == [0, 0, 1, 2, 1]


def test_reliability_with_two_repeats_averages_over_every_way_to_split_them():
    """With 2 repeats, a split assigns each stimulus' repeats to the halves one way or the other; the
    estimate over many random splits converges to the mean over all 2^n assignments (enumerated)."""
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    first[:, 0] += np.arange(6)
    second[:, 0] += np.arange(6)
    correlations = []
    for swap in itertools.product([False, True], repeat=6):
        swap = np.array(swap)[:, None]
        a, b = np.where(swap, second, first), np.where(swap, first, second)
        correlations.append([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(2)])
    expected = spearman_brown(np.mean(correlations, axis=0))
    responses = np.concatenate([first, second])
    ids = np.concatenate([np.arange(6), np.arange(6)])
    np.testing.assert_allclose(split_half_reliability(responses, ids, n_splits=4000, seed=5), expected, atol=0.02)


def test_reliability_separates_signal_from_noise_units():
    rng = np.random.default_rng(1)
    ids = np.tile(np.arange(40), 6)
    signal = rng.normal(size=40)[ids]
    responses = np.stack([signal + 0.3 * rng.normal(size=len(ids)), rng.normal(size=len(ids))], axis=1)
    reliability = split_half_reliability(responses, ids, n_splits=10, seed=2)
    assert reliability[0] > 0.9 and reliability[1] < 0.5


def test_reliability_needs_repeats():
    with pytest.raises(RepeatsError, match="at least 3 stimuli shown at least twice"):
        split_half_reliability(np.ones((5, 1)), np.arange(5))
