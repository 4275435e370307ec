"""``neurofit inspect``: what it reports on the real and generated files, and that its config snippet
validates against the schema and reads the file it was made from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from neurofit.cli import main
from neurofit.neural.inspect import CHOOSE_WINDOW, dandi_target, inspect_source, is_dandi_url, window_proposal
from neurofit.neural.nwb import NWBContentError
from neurofit.neural.responses import ResponseSpec, build_responses


def validated(snippet: str, repo, window=None) -> dict:
    """The snippet's datasets, validated (with defaults) against the config schema; ``window`` is the
    choice a user makes where the snippet asks for one."""
    from snakemake.utils import validate

    datasets = yaml.safe_load(snippet)["datasets"]
    for entry in datasets.values():
        if entry["responses"]["window_ms"] == CHOOSE_WINDOW:
            assert window is not None, "the snippet asks for a window the test did not choose"
            entry["responses"]["window_ms"] = window
    config = {"datasets": datasets, "models": {"m": {"architecture": "alexnet_small"}}}
    validate(config, str(repo / "workflow/schemas/config.schema.yaml"), set_default=True)
    return config["datasets"]


def test_inspect_000207(file_000207, repo, tmp_path):
    report, snippet, others = inspect_source(str(file_000207))
    assert report["nwb_version"] == "2.4.0" and others == []
    assert sorted(report["intervals"]) == ["encoding_table", "recognition_table", "timediscrimination_table"]
    assert report["intervals"]["encoding_table"]["rows"] == 90
    assert report["intervals"]["recognition_table"]["columns"]["frameName"]["values"][0] == "SB_5_frameB_foil.png"
    assert report["units"]["regions"] == {"hippocampus_right": 25, "amygdala_right": 10}
    assert report["stimulus_templates"] == {} and report["imaging_planes"] == {}
    assert report["stimulus_series"]["StimulusPresentation_encoding"]["external_files"][0] == "NB_24.mp4"
    dataset = validated(snippet, repo, [200, 1000])["000207"]
    assert dataset["assets"] == ["sub-4/sub-4_ses-4_ecephys+image.nwb"]
    assert dataset["regions"] == ["hippocampus_right", "amygdala_right"]
    block = dataset["responses"]
    assert (block["adapter"], block["table"], block["stimulus_column"]) == ("table_folder", "recognition_table",
                                                                           "frameName")
    assert "encoding_table/Clip_name" in snippet  # the videos are pointed out
    # The snippet reads the file once its stimulus folder is filled in.
    with_folder = {**block, "stimuli": {**block["stimuli"], "path": str(tmp_path)}}
    for name in _frame_names(file_000207):
        Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tmp_path / name, format="PNG")
    no_filters = {"min_rate_hz": None, "min_reliability": None}  # every unit, to compare with the file
    spec = ResponseSpec.from_config({**with_folder, "regions": dataset["regions"], "units": no_filters})
    result = build_responses([file_000207], spec)
    assert result.responses.sizes == {"presentation": 180, "neuroid": 35}


def _frame_names(path):
    from neurofit.neural.nwb import open_nwb, read_intervals

    with open_nwb(path) as nwbfile:
        return set(read_intervals(nwbfile, path, "recognition_table")["frameName"])


def test_inspect_000006(file_000006, repo):
    report, snippet, _ = inspect_source(str(file_000006))
    assert report["nwb_version"] == "2.0.2"
    assert list(report["intervals"]) == ["trials"] and report["intervals"]["trials"]["rows"] == 178
    assert report["intervals"]["trials"]["columns"]["type"]["values"][0] == "lick right"
    assert report["units"]["regions"] == {"ALM": 1}
    assert report["units"]["unsorted_spike_times"] == 1
    assert report["units"]["scalar_columns"]["quality"] == ["Excellent"]
    # A trial-structured file: a trials: entry (tests/trials/test_trial_inspect.py checks it in full).
    block = yaml.safe_load(snippet)["trials"]["datasets"]["000006"]["responses"]
    assert block["table"] == "trials" and block["unsorted_spike_times"] == "sort"


def test_inspect_generated_templates_and_ophys(tmp_path, nwb_writer, images, repo):
    onsets, index = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0, 1, 2, 2, 1, 0]
    spikes = sorted(o + 0.1 + 0.001 * k for o, i in zip(onsets, index, strict=True) for k in range(i + 1))
    ephys = nwb_writer(tmp_path / "ephys" / "sub-1" / "sub-1_ses-1.nwb",
                       units=[{"spike_times": spikes, "location": "VISp"}],
                       tables={"natural_scenes_presentations": {"start_time": onsets, "frame": index,
                                                                "category": ["a", "b", "c", "c", "b", "a"]}},
                       templates={"natural_scenes": images(3)})
    report, snippet, _ = inspect_source(str(ephys))
    assert report["stimulus_templates"]["natural_scenes"] == {"type": "Images", "count": 3, "shapes": [[6, 6]],
                                                              "names": ["img0", "img1", "img2"]}
    dataset = validated(snippet, repo, [50, 150])["sub-1"]
    assert dataset["path"] == str((tmp_path / "ephys").resolve())
    block = dataset["responses"]
    assert (block["adapter"], block["table"], block["stimulus_column"]) == ("templates",
                                                                           "natural_scenes_presentations", "frame")
    result = build_responses([ephys], ResponseSpec.from_config({**block, "regions": dataset["regions"]}))
    assert result.responses.values[:, 0].tolist() == [i + 1 for i in index]

    t = np.arange(200) / 20.0
    ophys = nwb_writer(tmp_path / "ophys.nwb", planes=[{"name": "plane0", "location": "VISl",
                                                        "data": np.ones((len(t), 3)), "rate": 20.0}],
                       tables={"natural_scenes_presentations": {"start_time": onsets, "image_index": index}},
                       templates={"natural_scenes": images(3)})
    report, snippet, _ = inspect_source(str(ophys))
    assert report["imaging_planes"]["plane0"]["location"] == "VISl"
    assert report["roi_series"][0]["rois"] == 3 and report["roi_series"][0]["container"] == "DfOverF"
    dataset = validated(snippet, repo, [0, 1000])["ophys"]
    assert dataset["regions"] == ["VISl"] and dataset["responses"]["adapter"] == "ophys"


def test_cli_inspect_prints_the_report_and_json(file_000006, capsys):
    assert main(["inspect", str(file_000006)]) == 0
    out = capsys.readouterr().out
    assert "trials: 178 rows" in out and "ALM" in out and "config snippet" in out
    assert main(["inspect", str(file_000006), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["units"]["count"] == 1 and "datasets:" in parsed["config_snippet"]


def test_cli_inspect_names_a_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.nwb")]) == 1
    assert capsys.readouterr().err.strip().endswith("missing.nwb: no such NWB file")


@pytest.fixture
def offline_instances(monkeypatch):
    """The dandi client asks the server for its instance info; answer from its built-in table instead."""
    import dandi.dandiarchive
    from dandi.consts import known_instances, known_instances_rev

    def lookup(name):
        key = known_instances_rev.get(name.rstrip("/"), name) if name.startswith("http") else name
        return known_instances[key]

    monkeypatch.setattr(dandi.dandiarchive, "get_instance", lookup)


def test_dandi_urls_are_parsed_by_the_dandi_client(offline_instances):
    """Resolving and streaming need the archive, which tests cannot reach: only parsing is tested."""
    dandiset = dandi_target("https://dandiarchive.org/dandiset/000207/0.220216.0323")
    assert (dandiset["kind"], dandiset["dandiset"], dandiset["version"]) == ("dandiset", "000207", "0.220216.0323")
    short = dandi_target("DANDI:000006/draft")
    assert (short["kind"], short["dandiset"], short["version"]) == ("dandiset", "000006", "draft")
    asset = dandi_target("https://api.dandiarchive.org/api/assets/0a5ab2f4-0c6a-4f3e-8d1c-111111111111/download/")
    assert (asset["kind"], asset["asset_id"]) == ("asset_id", "0a5ab2f4-0c6a-4f3e-8d1c-111111111111")
    path = dandi_target("https://api.dandiarchive.org/api/dandisets/000207/versions/0.220216.0323/assets/"
                        "?path=sub-4/sub-4_ses-4_ecephys+image.nwb")
    assert (path["kind"], path["path"]) == ("asset_path", "sub-4/sub-4_ses-4_ecephys+image.nwb")
    assert is_dandi_url("https://dandiarchive.org/dandiset/000207") and is_dandi_url("DANDI:000207")
    assert not is_dandi_url("/data/000207/sub-4/file.nwb")
    assert not is_dandi_url("https://dandiarchive.s3.amazonaws.com/blobs/abc/def")


def test_a_dandi_url_is_inspected_through_the_client_navigation(offline_instances, monkeypatch, file_000006, repo):
    """The archive cannot be reached here: the client's asset listing is replaced by one that hands
    out the local file as the asset's content URL; the choice of asset and the snippet are tested."""
    import contextlib

    import dandi.dandiarchive

    class Asset:
        def __init__(self, path):
            self.path = path

        def get_content_url(self, follow_redirects, strip_query):
            return str(file_000006)

    parse = dandi.dandiarchive.parse_dandi_url

    def fake_parse(url):
        parsed = parse(url)
        listing = [Asset("dandiset.yaml"), Asset("sub-a/sub-a_ses-1.nwb"), Asset("sub-b/sub-b_ses-2.nwb")]
        monkeypatch.setattr(type(parsed), "navigate", lambda self, strict: contextlib.nullcontext((None, None,
                                                                                                    iter(listing))))
        return parsed

    monkeypatch.setattr(dandi.dandiarchive, "parse_dandi_url", fake_parse)
    url = "https://dandiarchive.org/dandiset/000006/0.220101.0000"
    report, snippet, others = inspect_source(url, asset="sub-b/sub-b_ses-2.nwb")
    assert report["asset"] == "sub-b/sub-b_ses-2.nwb" and others == ["sub-a/sub-a_ses-1.nwb"]
    assert report["units"]["regions"] == {"ALM": 1}
    entry = yaml.safe_load(snippet)["trials"]["datasets"]["dandi000006"]  # 000006 is trial-structured
    assert entry == {**entry, "source": "dandi", "dandiset": "000006", "version": "0.220101.0000",
                     "assets": ["sub-b/sub-b_ses-2.nwb"]}
    with pytest.raises(NWBContentError, match=r"no NWB asset 'sub-c.nwb'; NWB assets: \['sub-a/sub-a_ses-1.nwb', "):
        inspect_source(url, asset="sub-c.nwb")


def test_the_window_is_a_convention_only_where_one_exists():
    assert window_proposal(["IT"], ophys=False) == ([70, 170], "window_ms: [70, 170] ms after onset (Majaj et al. "
                                                               "2015, the Brain-Score convention for IT)")
    assert window_proposal(["V4", "IT"], ophys=False)[0] == [70, 170]
    for regions, ophys in ((["V1", "IT"], False), (["hippocampus_right"], False), (["IT"], True), ([], False)):
        window, note = window_proposal(regions, ophys)
        assert window == CHOOSE_WINDOW and note.startswith("window_ms must be chosen: there is no standard window")


def test_warnings_000207_too_few_repeats_and_no_images(file_000207):
    report, snippet, _ = inspect_source(str(file_000207))
    columns = report["intervals"]["recognition_table"]["columns"]["frameName"]
    assert (report["intervals"]["recognition_table"]["rows"], columns["n_unique"]) == (180, 134)
    assert report["warnings"][0].startswith("too few repeats for a noise ceiling: recognition_table/frameName has 134 "
                                            "distinct stimuli in 180 rows and only 32 are shown twice or more")
    assert any(w.startswith("no stimulus images in the file") for w in report["warnings"])
    assert "# warning: too few repeats" in snippet
    assert "window_ms must be chosen: there is no standard window for regions ['hippocampus_right', " in snippet
    assert "Brain-Score" not in snippet


def test_warnings_000006_one_unit_and_quality_filters(file_000006, tmp_path, capsys):
    report, snippet, _ = inspect_source(str(file_000006))
    warnings = report["warnings"]
    assert any(w.startswith("one unit in the file") for w in warnings)
    assert any("responses.units.quality: {column: quality, keep: ['Excellent']}" in w for w in warnings)
    assert any('responses.query: "is_good == 1"' in w for w in warnings)
    assert main(["inspect", str(file_000006), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == warnings


def test_a_url_that_is_not_a_dandi_url_gets_no_local_path(file_000006, monkeypatch):
    """An http URL the command cannot place (e.g. an S3 blob) is streamed; the snippet must not turn it into
    a local folder named after the URL."""
    import neurofit.neural.inspect as nf_inspect

    real = nf_inspect.inspect_nwb
    monkeypatch.setattr(nf_inspect, "inspect_nwb", lambda source: {**real(file_000006), "file": source})
    url = "https://dandiarchive.s3.amazonaws.com/blobs/abc/def/0123"
    _, snippet, _ = inspect_source(url)
    entry = yaml.safe_load(snippet)["trials"]["datasets"]["DATASET"]  # 000006 is trial-structured
    assert entry["source"] == "dandi" and "path" not in entry and "http" not in json.dumps(entry)
    assert "is not a DANDI dandiset or asset URL this command understands" in snippet
