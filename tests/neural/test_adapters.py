"""The three adapters on generated files with known content; several files merged; unit filters
reported with counts; regions renamed by map and regex."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from neurofit.neural.regions import parse_location, rename_region
from neurofit.neural.responses import ResponseSpec, build_responses

ONSETS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
INDEX = [0, 1, 2, 3, 3, 2, 1, 0]


def one_spike_per_image_index(onsets, index, offset=0.1):
    """index i -> i spikes at onset + offset + k ms (inside a 70-170 ms window)."""
    return sorted(o + offset + 0.001 * k for o, i in zip(onsets, index, strict=True) for k in range(i))


def test_adapter_templates_with_an_index_column(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "a.nwb", units=[{"spike_times": one_spike_per_image_index(ONSETS, INDEX),
                                                  "location": "VISp"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "frame": INDEX}},
                      templates={"natural_scenes": images(4)})
    spec = ResponseSpec.from_config({"stimulus_column": "frame", "region_map": {"VISp": "V1"}})
    result = build_responses([path], spec)
    r = result.responses
    assert r.values[:, 0].tolist() == INDEX
    assert r["stimulus_id"].values.tolist() == [f"img{i}" for i in INDEX]
    assert r["region"].values.tolist() == ["V1"] and r["location"].values.tolist() == ["VISp"]
    assert result.stimuli["stimulus_id"].values.tolist() == ["img0", "img1", "img2", "img3"]
    assert r["reliability"].values[0] == pytest.approx(1.0)  # both repeats identical


def test_the_files_are_recorded_relative_to_the_working_directory(tmp_path, monkeypatch, nwb_writer, images):
    # the same run in another clone (another absolute path) records the same files
    monkeypatch.chdir(tmp_path)
    path = nwb_writer(tmp_path / "raw" / "a.nwb", units=[{"spike_times": one_spike_per_image_index(ONSETS, INDEX),
                                                          "location": "VISp"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "frame": INDEX}},
                      templates={"natural_scenes": images(4)})
    spec = ResponseSpec.from_config({"stimulus_column": "frame", "region_map": {"VISp": "V1"}})
    assert json.loads(build_responses([path.resolve()], spec).responses.attrs["files"]) == ["raw/a.nwb"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the file is not under the working directory: kept as given
    assert json.loads(build_responses([path], spec).responses.attrs["files"]) == [str(path)]


def test_adapter_templates_with_an_index_series(tmp_path, nwb_writer, images):
    index = [0, 1, 1, 2, 0, 2]
    spikes = one_spike_per_image_index(ONSETS[:6], [i + 1 for i in index])
    path = nwb_writer(tmp_path / "a.nwb", units=[{"spike_times": spikes, "location": "V1"}],
                      templates={"scenes": images(3)},
                      index_series={"name": "scene_index", "onsets": ONSETS[:6], "indices": index,
                                    "templates": "scenes"})
    r = build_responses([path], ResponseSpec.from_config({"index_series": "scene_index"})).responses
    assert r["stimulus_id"].values.tolist() == [f"img{i}" for i in index]
    assert r.values[:, 0].tolist() == [i + 1 for i in index]
    assert r.attrs["source"] == "scene_index"


def test_excluded_values_and_queries_drop_presentations(tmp_path, nwb_writer, images):
    frame = [0, -1, 1, 2, -1, 2, 1, 0]  # -1: a blank screen, as in Allen presentation tables
    spikes = one_spike_per_image_index(ONSETS, [max(i, 0) + 1 for i in frame])
    path = nwb_writer(tmp_path / "a.nwb", units=[{"spike_times": spikes, "location": "V1"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "frame": frame,
                                                               "is_good": [1, 1, 1, 1, 1, 1, 1, 0]}},
                      templates={"scenes": images(3)})
    spec = ResponseSpec.from_config({"stimulus_column": "frame", "exclude": [-1], "query": "is_good == 1"})
    result = build_responses([path], spec, ceiling=False)  # img0 is left with one repeat
    assert result.responses["stimulus_id"].values.tolist() == ["img0", "img1", "img2", "img2", "img1"]
    assert result.responses.values[:, 0].tolist() == [1, 2, 3, 3, 2]
    assert result.summary["files"][0]["rows"] == 8 and result.summary["files"][0]["rows_used"] == 5


def test_adapter_table_folder_reads_images_named_by_a_column(tmp_path, nwb_writer):
    names = ["cat", "dog", "owl", "cat", "dog", "owl"]
    folder = tmp_path / "stimuli"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = {n: rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for n in ("cat", "dog", "owl")}
    for name, array in pixels.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    spikes = one_spike_per_image_index(ONSETS[:6], [1, 2, 3, 1, 2, 3])
    path = nwb_writer(tmp_path / "b.nwb", units=[{"spike_times": spikes, "location": "hippocampus_right"}],
                      tables={"recognition_table": {"start_time": ONSETS[:6], "frameName": names}})
    spec = ResponseSpec.from_config({"adapter": "table_folder", "table": "recognition_table",
                                     "stimulus_column": "frameName",
                                     "stimuli": {"path": str(folder), "pattern": "{id}.png"}})
    result = build_responses([path], spec)
    assert result.responses["stimulus_id"].values.tolist() == names
    assert result.responses.values[:, 0].tolist() == [1, 2, 3, 1, 2, 3]
    assert result.responses["region"].values.tolist() == ["hippocampus_right"]
    assert result.stimuli.dims == ("stimulus", "y", "x", "channel")
    np.testing.assert_allclose(result.stimuli.sel(stimulus=1).values, pixels["dog"] / 255.0, atol=1e-6)


def test_adapter_ophys_means_dff_in_the_window_per_plane(tmp_path, nwb_writer, images):
    rate = 20.0
    t = np.arange(int(10 * rate)) / rate
    # ROI k of plane p: value (p * 10 + k) during [onset + 0.1, onset + 0.4), 0 elsewhere.
    planes = []
    for p, location in enumerate(["VISp", "VISl"]):
        data = np.zeros((len(t), 2))
        for onset in ONSETS:
            inside = (t >= onset + 0.1 - 1e-9) & (t < onset + 0.4 - 1e-9)
            data[inside] = [p * 10 + 1, p * 10 + 2]
        planes.append({"name": f"plane{p}", "location": location, "data": data, "rate": rate})
    path = nwb_writer(tmp_path / "c.nwb", planes=planes,
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX}},
                      templates={"scenes": images(4)})
    spec = ResponseSpec.from_config({"adapter": "ophys", "window_ms": [100, 400], "bin_ms": 150,
                                     "region_map": {"VIS(.*)": r"visual_\1"}, "units": {"min_reliability": None}})
    result = build_responses([path], spec)
    r = result.responses
    assert r.name == "dff"
    np.testing.assert_allclose(r.values, np.tile([1.0, 2.0, 11.0, 12.0], (len(ONSETS), 1)))
    assert r["region"].values.tolist() == ["visual_p", "visual_p", "visual_l", "visual_l"]
    assert r["unit_id"].values.tolist() == [0, 1, 0, 1]
    assert r["plane"].values.tolist() == ["plane0", "plane0", "plane1", "plane1"]
    assert result.binned.sizes["time_bin"] == 2
    np.testing.assert_allclose(result.binned.mean("time_bin").values, r.values)
    planes_info = result.summary["files"][0]["planes"]
    assert {v["location"] for v in planes_info.values()} == {"VISp", "VISl"}


def test_files_sharing_stimuli_are_merged_along_neuroid(tmp_path, nwb_writer, images):
    order_b = [3, 2, 1, 0, 0, 1, 2, 3, 1]  # another order, and one extra presentation not in file a
    onsets_b = [float(i + 1) for i in range(len(order_b))]
    a = nwb_writer(tmp_path / "sub-1" / "sub-1_ses-1.nwb",
                   units=[{"spike_times": one_spike_per_image_index(ONSETS, INDEX), "location": "V1"}],
                   tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX}},
                   templates={"scenes": images(4)})
    b = nwb_writer(tmp_path / "sub-2" / "sub-2_ses-1.nwb",
                   units=[{"spike_times": one_spike_per_image_index(onsets_b, [2 * i for i in order_b]),
                           "location": "IT"}] * 2,
                   tables={"natural_scenes_presentations": {"start_time": onsets_b, "image_index": order_b}},
                   templates={"scenes": images(4)})
    result = build_responses([a, b], ResponseSpec(regions=["V1", "IT"]))
    r = result.responses
    assert r.sizes == {"presentation": 8, "neuroid": 3}
    assert r["session"].values.tolist() == ["sub-1_ses-1", "sub-2_ses-1", "sub-2_ses-1"]
    # Every presentation row holds the same stimulus for both files: b's counts are twice a's.
    np.testing.assert_array_equal(r.values[:, 1], 2 * r.values[:, 0])
    assert result.summary["files"][1]["presentations_dropped_unshared"] == 1


def test_unit_filters_report_counts_kept_and_dropped(tmp_path, nwb_writer, images):
    rng = np.random.default_rng(0)
    onsets = np.arange(40) + 1.0
    index = np.tile(np.arange(10), 4)
    reliable = one_spike_per_image_index(onsets, 3 * index)
    noisy = sorted(o + 0.1 + 0.001 * k for o in onsets for k in range(rng.integers(0, 10)))
    silent = [0.5]
    units = [{"spike_times": reliable, "location": "V1", "quality": "good"},
             {"spike_times": noisy, "location": "V1", "quality": "good"},
             {"spike_times": silent, "location": "V1", "quality": "good"},
             {"spike_times": reliable, "location": "V1", "quality": "mua"},
             {"spike_times": reliable, "location": "V4", "quality": "good"}]
    path = nwb_writer(tmp_path / "f.nwb", units=units, unit_columns={"quality": "sorting quality"},
                      tables={"natural_scenes_presentations": {"start_time": onsets, "image_index": index}},
                      templates={"scenes": images(10)})
    spec = ResponseSpec.from_config({"regions": ["V1"], "units": {"quality": {"column": "quality", "keep": ["good"]},
                                                                  "min_rate_hz": 1.0, "min_reliability": 0.5}})
    result = build_responses([path], spec)
    assert result.responses["unit_id"].values.tolist() == [0]
    steps = {f["filter"]: (f["kept"], f["dropped"]) for f in result.summary["filters"]}
    assert steps == {"region": (4, 1), "quality": (3, 1), "min_rate_hz": (2, 1), "min_reliability": (1, 1)}
    assert result.summary["neuroids_per_region"] == {"V1": 1}
    json.dumps(result.summary)  # the summary is written as JSON


def test_key_value_locations_and_region_maps():
    text = "brain_region: ALM; brain_subregion: N/A; cortical_layer: 5; hemisphere: left"
    assert parse_location(text) == "ALM"
    assert parse_location(text, key="hemisphere") == "left"
    assert parse_location(b"hippocampus_right") == "hippocampus_right"
    assert parse_location("area: V1") == "area: V1"  # no brain_region key: kept whole, never lost
    mapping = {"VISp": "V1", "VISl|VISal": "LM_AL", "CA(\\d)": r"hippocampus_CA\1"}
    assert [rename_region(r, mapping) for r in ["VISp", "VISal", "CA3", "IT"]] == ["V1", "LM_AL", "hippocampus_CA3",
                                                                                      "IT"]


def test_region_map_order_does_not_matter():
    """A config written back with sorted keys must mean the same: exact names win, and two patterns
    that rename one region differently are an error rather than first-listed-wins."""
    mapping = {"VISp": "V1", "VIS.*": "visual"}
    assert rename_region("VISp", mapping) == rename_region("VISp", dict(reversed(mapping.items()))) == "V1"
    assert rename_region("VISl", {"VIS.*": "visual", "VISl|VISal": "visual"}) == "visual"  # same name: fine
    with pytest.raises(ValueError, match=r"region_map: region 'VISl' matches patterns .* different names"):
        rename_region("VISl", {"VIS.*": "visual", "VISl|VISal": "LM"})
