"""Every bad input gives an error that names the file and the key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from neurofit.neural.nwb import NWBContentError
from neurofit.neural.responses import ResponseConfigError, ResponseSpec, build_responses

ONSETS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
INDEX = [0, 1, 2, 0, 1, 2]


@pytest.fixture
def good_file(tmp_path, nwb_writer, images):
    """Two V1 units and one IT unit, a presentations table indexing 3 template images twice each."""
    spikes = sorted(o + 0.1 for o in ONSETS)
    return nwb_writer(tmp_path / "sub-x" / "sub-x_ses-1.nwb",
                      units=[{"spike_times": spikes, "location": "V1", "quality": "good"},
                             {"spike_times": spikes, "location": "V1", "quality": "noise"},
                             {"spike_times": spikes, "location": "IT", "quality": "noise"}],
                      unit_columns={"quality": "sorting quality"},
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX,
                                                               "name": [f"img{i}" for i in INDEX]},
                              "other_table": {"start_time": ONSETS, "image_index": INDEX}},
                      templates={"scenes": images(3)})


def build(path, ceiling=False, **settings):
    return build_responses([path], ResponseSpec.from_config(settings), ceiling=ceiling)


def test_missing_table_lists_the_tables_that_exist(good_file):
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb: no intervals table 'trials' \(responses.table\); "
                                              r"tables in the file: \['natural_scenes_presentations', 'other_table'\]"):
        build(good_file, table="trials")


def test_missing_stimulus_column_lists_the_columns(good_file):
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb: intervals table 'natural_scenes_presentations' "
                                              r"has no column 'frame' \(responses.stimulus_column\); columns: "
                                              r".*image_index"):
        build(good_file, stimulus_column="frame")


def test_stimulus_ids_absent_from_the_templates(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "f.nwb", units=[{"spike_times": [1.1], "location": "V1"}],
                      tables={"t": {"start_time": ONSETS[:3], "name": ["img0", "img7", "img9"],
                                    "index": [0, 1, 5]}},
                      templates={"scenes": images(3)})
    with pytest.raises(NWBContentError, match=r"f.nwb: 2 stimulus ids of t/name are absent from the stimulus "
                                              r"templates, e.g. \['img7', 'img9'\]"):
        build(path, table="t", stimulus_column="name")
    with pytest.raises(NWBContentError, match=r"f.nwb: t/index values \[5\] are not indices into the 3 stimulus"):
        build(path, table="t", stimulus_column="index")


def test_stimulus_ids_absent_from_the_folder(good_file, tmp_path, images):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    Image.fromarray(images(1)["img0"]).save(folder / "img0.png")
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb: 2 of 3 stimulus ids have no file in .*stimuli "
                                              r"\(pattern '\{id\}.png'\), e.g. \['img1', 'img2'\]"):
        build(good_file, adapter="table_folder", stimulus_column="name",
              stimuli={"path": str(folder), "pattern": "{id}.png"})
    with pytest.raises(NWBContentError, match=r"stimulus folder .*nowhere \(responses.stimuli.path\) does not exist"):
        build(good_file, adapter="table_folder", stimulus_column="name", stimuli={"path": str(tmp_path / "nowhere")})


def test_no_units(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "empty.nwb", tables={"natural_scenes_presentations": {"start_time": ONSETS,
                                                                                       "image_index": INDEX}},
                      templates={"scenes": images(3)})
    with pytest.raises(NWBContentError, match=r"empty.nwb: the file has no units"):
        build(path)
    with pytest.raises(NWBContentError, match=r"empty.nwb: no DfOverF container; ROI response series in the file: "):
        build(path, adapter="ophys")


def test_a_region_with_zero_units_after_filters(good_file):
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb.*region 'IT' \(datasets.\*.regions\) has no units "
                                              r"after filters \[\('region', 1\), \('quality', 0\)\]"):
        build(good_file, regions=["V1", "IT"], units={"quality": {"column": "quality", "keep": ["good"]},
                                                      "min_rate_hz": None, "min_reliability": None})
    with pytest.raises(NWBContentError, match=r"region 'V2' .* regions in the file\(s\): \['IT', 'V1'\]"):
        build(good_file, regions=["V1", "V2"], units={"min_rate_hz": None, "min_reliability": None})
    with pytest.raises(NWBContentError, match=r"units have no column 'grade' \(responses.units.quality.column\); "
                                              r"unit columns: \['quality'\]"):
        build(good_file, units={"quality": {"column": "grade", "keep": ["good"]}})


def test_images_of_different_sizes_unless_a_resize_is_set(good_file, tmp_path):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    for i, size in enumerate([(6, 6), (6, 6), (8, 5)]):
        Image.fromarray(np.full(size, 100 + i, dtype=np.uint8)).save(folder / f"img{i}.png")
    settings = {"adapter": "table_folder", "stimulus_column": "name", "stimuli": {"path": str(folder),
                                                                                   "pattern": "{id}.png"}}
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb.*stimulus images have different sizes "
                                              r"\[\(6, 6\), \(8, 5\)\]; set responses.resize"):
        build(good_file, **settings)
    stimuli = build(good_file, resize=[4, 4], **settings).stimuli
    assert stimuli.shape == (3, 4, 4)
    np.testing.assert_allclose(stimuli.values[2], 102 / 255, atol=1e-5)


def test_nan_spike_times(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "nan.nwb", units=[{"spike_times": [1.1, np.nan, 2.1], "location": "V1"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX}},
                      templates={"scenes": images(3)})
    with pytest.raises(NWBContentError, match=r"nan.nwb: units/spike_times of unit 0 contain 1 NaN value\(s\); "
                                              r"spike times must be numbers.*write the file again without them.*"
                                              r"responses.units.quality"):
        build(path)


def test_unsorted_spike_times(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "unsorted.nwb", units=[{"spike_times": [2.1, 1.1, 4.1], "location": "V1"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS, "image_index": INDEX}},
                      templates={"scenes": images(3)})
    with pytest.raises(NWBContentError, match=r"unsorted.nwb: units/spike_times of unit 0 are not sorted; set "
                                              r"responses.unsorted_spike_times: sort"):
        build(path)
    counts = build(path, unsorted_spike_times="sort", window_ms=[0, 200]).responses.values[:, 0]
    assert counts.tolist() == [1, 1, 0, 1, 0, 0]


def test_fewer_than_two_repeats_when_a_ceiling_is_asked(tmp_path, nwb_writer, images):
    path = nwb_writer(tmp_path / "once.nwb", units=[{"spike_times": [1.1], "location": "V1"}],
                      tables={"natural_scenes_presentations": {"start_time": ONSETS[:3], "image_index": [0, 1, 2]}},
                      templates={"scenes": images(3)})
    with pytest.raises(NWBContentError, match=r"once.nwb.*a noise ceiling needs stimuli shown at least twice "
                                              r"\(natural_scenes_presentations/image_index\).*repeats per stimulus: "
                                              r"max 1"):
        build(path, ceiling=True)
    assert build(path, ceiling=False).responses.sizes["presentation"] == 3


def test_files_that_share_no_stimuli(tmp_path, nwb_writer, images):
    common = {"units": [{"spike_times": [1.1], "location": "V1"}], "templates": {"scenes": images(6)}}
    a = nwb_writer(tmp_path / "a.nwb", tables={"natural_scenes_presentations": {"start_time": ONSETS[:3],
                                                                                "image_index": [0, 1, 2]}}, **common)
    b = nwb_writer(tmp_path / "b.nwb", tables={"natural_scenes_presentations": {"start_time": ONSETS[:3],
                                                                                "image_index": [3, 4, 5]}}, **common)
    with pytest.raises(NWBContentError, match=r"a.nwb', '.*b.nwb'\] share no stimuli"):
        build_responses([a, b], ResponseSpec(), ceiling=False)


def test_missing_file_and_no_files(tmp_path):
    with pytest.raises(NWBContentError, match=r"nothere.nwb: no such NWB file"):
        build(tmp_path / "nothere.nwb")
    with pytest.raises(NWBContentError, match="no NWB files"):
        build_responses([], ResponseSpec())


@pytest.mark.parametrize(("settings", "message"), [
    ({"adapter": "spikes"}, r"responses.adapter: 'spikes' is not one of"),
    ({"window_ms": [170, 70]}, r"responses.window_ms: stop 70 must be after start 170"),
    ({"bin_ms": 30}, r"responses.bin_ms: 30 must divide the window \[70.0, 170.0\]"),
    ({"adapter": "table_folder"}, r"responses.stimuli: adapter table_folder needs stimuli"),
    ({"adapter": "ophys", "units": {"min_rate_hz": 1}}, r"responses.units.min_rate_hz: .*adapter ophys"),
    ({"resize": "stretch"}, r"responses.resize: 'stretch' is neither"),
])
def test_inconsistent_settings_name_the_key(settings, message):
    with pytest.raises(ResponseConfigError, match=message):
        ResponseSpec.from_config(settings)


def test_a_query_cannot_run_code(good_file, tmp_path):
    """The issue's exploit: pandas query reached os.system; the parsed filter refuses it at config time."""
    marker = tmp_path / "x"
    exploit = f"@pd.io.common.os.system('touch {marker}') == 0 or start_time >= 0"
    with pytest.raises(ResponseConfigError, match=r"responses.query: .*unexpected '@pd.io.commo' at character 0; "
                                                  r"a filter compares columns to literals"):
        build(good_file, query=exploit)
    assert not marker.exists()
    kept = build(good_file, query="image_index != 2 and name in ['img0', 'img1']").responses
    assert kept["stimulus_id"].values.tolist() == ["img0", "img1", "img0", "img1"]
    with pytest.raises(NWBContentError, match=r"sub-x_ses-1.nwb table 'natural_scenes_presentations': "
                                              r"responses.query 'is_good == 1' names column\(s\) \['is_good'\]"):
        build(good_file, query="is_good == 1")


@pytest.mark.parametrize("bad_id", ["../secret", "/etc/passwd", "sub/../../secret"])
def test_stimulus_ids_cannot_leave_the_stimulus_folder(tmp_path, nwb_writer, images, bad_id):
    folder = tmp_path / "stimuli"
    (folder / "sub").mkdir(parents=True)
    for i in range(2):
        Image.fromarray(images(2)[f"img{i}"]).save(folder / f"img{i}.png")
    Image.fromarray(images(1)["img0"]).save(tmp_path / "secret.png")  # a real file outside the folder
    path = nwb_writer(tmp_path / "evil.nwb", units=[{"spike_times": [1.1], "location": "V1"}],
                      tables={"t": {"start_time": ONSETS[:3], "name": ["img0", "img1", bad_id]}})
    pattern = "{id}" if bad_id.startswith("/") else "{id}.png"
    with pytest.raises(NWBContentError, match=r"evil.nwb: 1 stimulus id\(s\) name files outside the stimulus folder "
                                              r".*stimuli \(responses.stimuli.path\), e.g. \[.*secret|passwd.*refused"):
        build(path, adapter="table_folder", table="t", stimulus_column="name",
              stimuli={"path": str(folder), "pattern": pattern})


def test_a_link_out_of_the_stimulus_folder_is_refused(tmp_path, nwb_writer, images):
    folder = tmp_path / "stimuli"
    folder.mkdir()
    Image.fromarray(images(1)["img0"]).save(tmp_path / "secret.png")
    (folder / "img0.png").symlink_to(tmp_path / "secret.png")
    path = nwb_writer(tmp_path / "link.nwb", units=[{"spike_times": [1.1], "location": "V1"}],
                      tables={"t": {"start_time": ONSETS[:2], "name": ["img0", "img0"]}})
    with pytest.raises(NWBContentError, match=r"link.nwb: 1 stimulus id\(s\) name files outside"):
        build(path, adapter="table_folder", table="t", stimulus_column="name",
              stimuli={"path": str(folder), "pattern": "{id}.png"})


@pytest.mark.parametrize("pattern", ["{id.__class__}.png", "{name}.png", "{id:>5}.png", "{0}.png", "{id"])
def test_the_stimulus_pattern_holds_only_the_id_field(good_file, tmp_path, pattern):
    (tmp_path / "stimuli").mkdir()
    with pytest.raises(NWBContentError, match=r"responses.stimuli.pattern .*write e.g. '\{id\}.png'"):
        build(good_file, adapter="table_folder", stimulus_column="name",
              stimuli={"path": str(tmp_path / "stimuli"), "pattern": pattern})


@pytest.fixture
def unreadable_files(tmp_path, file_000207):
    """A text file named .nwb (an error page saved by a browser) and a real NWB file cut short."""
    text = tmp_path / "sub-a" / "sub-a_ses-1.nwb"
    text.parent.mkdir()
    text.write_text("<html>404 Not Found</html>\n")
    real = file_000207.read_bytes()
    cut = tmp_path / "sub-b" / "sub-b_ses-1.nwb"
    cut.parent.mkdir()
    cut.write_bytes(real[:100_000])
    return text, cut, len(real)


def test_unreadable_nwb_files_are_named_with_the_fix(unreadable_files):
    from neurofit.neural.nwb import open_nwb

    text, cut, size = unreadable_files
    with pytest.raises(NWBContentError, match=rf"{text}: not a readable NWB/HDF5 file; .*signature not found.*delete "
                                              r"it \(from the cache, for a DANDI download\) so it is fetched again"):
        build(text)
    with pytest.raises(NWBContentError, match=rf"{cut}: not a readable NWB/HDF5 file; it is truncated: 100000 of the "
                                              rf"{size} bytes its HDF5 header records. Delete it"), open_nwb(cut):
        pass


def test_the_manifest_stage_names_an_unreadable_file(unreadable_files):
    from neurofit.data.local import DatasetError, local_manifest

    text, cut, _ = unreadable_files
    with pytest.raises(DatasetError, match=rf"{text}: not a readable NWB/HDF5 file"):
        local_manifest(text.parent.parent)
    with pytest.raises(DatasetError, match=rf"{cut}: not a readable NWB/HDF5 file; it is truncated"):
        local_manifest(text.parent.parent, ["sub-b/*.nwb"])
