"""The responses and stimuli stages as the pipeline runs them: a manifest of several files -> merged
responses, binned responses and a JSON summary of what was read and filtered; the stimulus images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.cli import stage_responses, stage_stimuli
from neurofit.data.local import local_manifest, write_manifest
from neurofit.neural.responses import ResponseSpec, build_responses, build_stimuli
from neurofit.neural.stimuli import stimulus_settings
from neurofit.paths import Layout


def test_stage_merges_the_manifest_files_and_writes_every_output(tmp_path, nwb_writer, images):
    rng = np.random.default_rng(0)
    for subject, regions in (("sub-a", ["V1", "V1", "IT"]), ("sub-b", ["IT", "VISp"])):
        order = np.concatenate([rng.permutation(8) for _ in range(3)])
        onsets = 1.0 + np.arange(len(order)) * 0.5
        units = [{"spike_times": sorted(o + 0.08 + 0.001 * k for o, i in zip(onsets, order, strict=True)
                                        for k in range(i + u)), "location": region}
                 for u, region in enumerate(regions)]
        nwb_writer(tmp_path / "dandiset" / subject / f"{subject}_ses-1.nwb", units=units,
                   tables={"natural_scenes_presentations": {"start_time": onsets, "image_index": order}},
                   templates={"scenes": images(8)})
    layout = Layout(results=str(tmp_path / "results"))
    write_manifest(local_manifest(tmp_path / "dandiset"), layout.manifest("d"))
    outputs = {"responses_out": layout.responses("d"), "binned_out": layout.responses_binned("d"),
               "summary_out": layout.responses_summary("d")}
    stage_responses(layout.manifest("d"), {"bin_ms": 25, "region_map": {"VISp": "V1"}}, ["V1", "IT"], **outputs)

    responses = xr.load_dataarray(outputs["responses_out"], engine="h5netcdf")
    assert responses.sizes == {"presentation": 24, "neuroid": 5}
    assert responses["session"].values.tolist() == ["sub-a_ses-1"] * 3 + ["sub-b_ses-1"] * 2
    assert responses["region"].values.tolist() == ["V1", "V1", "IT", "IT", "V1"]
    # Unit u of either file fires (image index + u) spikes: the merge aligned the presentations.
    index = np.array([int(s[3:]) for s in responses["stimulus_id"].values])
    np.testing.assert_array_equal(responses.values, index[:, None] + np.array([0, 1, 2, 0, 1]))
    assert np.allclose(responses["reliability"].values, 1.0)
    binned = xr.load_dataarray(outputs["binned_out"], engine="h5netcdf")
    assert binned.sizes["time_bin"] == 4
    np.testing.assert_array_equal(binned.sum("time_bin").values, responses.values)
    summary = json.loads(Path(outputs["summary_out"]).read_text())
    assert summary["neuroids_per_region"] == {"IT": 2, "V1": 3}
    assert summary["filters"][0] == {"filter": "region", "setting": ["V1", "IT"], "kept": 5, "dropped": 0,
                                     "by_region": {"V1": {"kept": 3, "dropped": 0}, "IT": {"kept": 2, "dropped": 0}}}
    stage_stimuli(layout.manifest("d"), {"bin_ms": 25, "region_map": {"VISp": "V1"}}, layout.stimuli("d"))
    stimuli = xr.load_dataarray(layout.stimuli("d"), engine="h5netcdf")
    assert stimuli.sizes["stimulus"] == 8 and stimuli["stimulus_id"].values.tolist() == sorted(set(
        responses["stimulus_id"].values.tolist()))


def test_stimuli_alone_are_those_of_the_responses(tmp_path, nwb_writer, images):
    """The stimuli job reads no units, yet writes the responses' own stimuli: those every file showed
    (by id and repeat), whatever the response-only settings."""
    for subject, shown in (("sub-a", [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]), ("sub-b", [5, 4, 3, 2, 1, 5, 4, 3, 2, 1])):
        onsets = 1.0 + np.arange(len(shown)) * 0.5
        units = [{"spike_times": [o + 0.1 for o in onsets], "location": "V1"}]
        nwb_writer(tmp_path / subject / f"{subject}_ses-1.nwb", units=units,
                   tables={"natural_scenes_presentations": {"start_time": onsets, "image_index": shown}},
                   templates={"scenes": images(6)})
    paths = sorted(str(p) for p in tmp_path.rglob("*.nwb"))
    settings = {"window_ms": [50, 150], "region_map": {"VISp": "V1"}}
    from_responses = build_responses(paths, ResponseSpec.from_config(settings)).stimuli
    alone = build_stimuli(paths, ResponseSpec.from_config(stimulus_settings(settings)))
    assert alone["stimulus_id"].values.tolist() == ["img1", "img2", "img3", "img4", "img5"]
    xr.testing.assert_identical(alone, from_responses)
