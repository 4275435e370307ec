"""``neurofit inspect`` on a DANDI server other than dandiarchive.org (``--api-url``), against the loopback
archive of tests/data/dandi_server.py: dandiset pages, asset download URLs, with and without their dandiset."""

from __future__ import annotations

import yaml
from dandi_server import DANDISET, NWB_PATH, VERSION

from neurofit.cli import main
from neurofit.neural.inspect import inspect_source, server_target


def test_a_dandiset_page_on_another_server(archive, capsys):
    url = f"{archive.url}/dandiset/{DANDISET}/{VERSION}"
    report, snippet, others = inspect_source(url, asset=NWB_PATH, api_url=archive.api_url)
    assert report["asset"] == NWB_PATH and report["units"]["count"] > 1
    assert sorted(others) == ["sub-other/sub-other_ses-1_behavior.nwb", "sub-sim/sub-sim_ses-2_ecephys.nwb"]
    entry = yaml.safe_load(snippet)["datasets"][f"dandi{DANDISET}"]
    assert {k: entry[k] for k in ("source", "dandiset", "version", "assets", "api_url")} == {
        "source": "dandi", "dandiset": DANDISET, "version": VERSION, "assets": [NWB_PATH], "api_url": archive.api_url}
    assert main(["inspect", url, "--asset", NWB_PATH, "--api-url", archive.api_url]) == 0
    out = capsys.readouterr().out
    assert "source: dandi" in out and f"api_url: {archive.api_url}" in out


def test_an_asset_download_url_gives_a_dandi_snippet(archive):
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    url = f"{archive.api_url}/dandisets/{DANDISET}/versions/{VERSION}/assets/{asset.asset_id}/download/"
    report, snippet, _ = inspect_source(url, api_url=archive.api_url)
    entry = yaml.safe_load(snippet)["datasets"][f"dandi{DANDISET}"]
    assert (entry["source"], entry["dandiset"], entry["version"], entry["assets"]) == ("dandi", DANDISET, VERSION,
                                                                                      [NWB_PATH])
    assert "path" not in entry
    bare = f"{archive.api_url}/assets/{asset.asset_id}/download/"
    report, snippet, _ = inspect_source(bare, api_url=archive.api_url)
    entry = yaml.safe_load(snippet)["datasets"]["dandi"]
    assert (entry["source"], entry["dandiset"], entry["assets"]) == ("dandi", "DANDISET_ID", [NWB_PATH])
    assert "the URL names an asset but not its dandiset and version" in snippet


def test_server_urls_are_parsed_without_the_known_instances():
    api = "https://dandi.example.org/api"
    page = server_target("https://dandi.example.org/dandiset/000123/0.230101.1200/files?location=sub-1%2F", api)
    assert (page["kind"], page["dandiset"], page["version"], page["path"]) == ("dandiset", "000123", "0.230101.1200",
                                                                               "sub-1")
    draft = server_target(f"{api}/dandisets/000123/versions/draft/assets/?path=sub-1/a.nwb", api)
    assert (draft["kind"], draft["version"], draft["path"]) == ("asset_path", "draft", "sub-1/a.nwb")
