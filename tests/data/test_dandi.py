"""DANDI acquisition through the real dandi client against a loopback DANDI server (tests/data/dandi_server.py)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dandi_server import DANDISET, NWB_PATH, OTHER_PATH, SECOND_PATH, VERSION, dandi_etag

from neurofit.data import dandi as nf_dandi
from neurofit.data.assets import asset_source
from neurofit.data.dandi import DandiError, DandiSpec, DraftVersionWarning, acquire
from neurofit.data.local import local_manifest
from neurofit.neural.nwb import open_nwb
from neurofit.neural.responses import ResponseSpec, responses_from_nwb
from neurofit.paths import Layout


def spec(archive, assets=(NWB_PATH,), **extra) -> DandiSpec:
    entry = {"dandiset": DANDISET, "version": VERSION, "api_url": archive.api_url, "assets": list(assets), **extra}
    return DandiSpec.from_config("brain", entry)


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """No multi-second pauses between retries: the probe's backoff and the client's random sleep."""
    import dandi.download

    monkeypatch.setattr(nf_dandi, "PROBE_BACKOFF_S", 0.01)
    monkeypatch.setattr(dandi.download, "random", SimpleNamespace(random=lambda: 0.0))


def test_a_manifest_records_files_under_the_workflow_relative_to_it_and_survives_a_move(tmp_path, monkeypatch,
                                                                                         dandi_nwb):
    from neurofit.data.assets import asset_source

    project = tmp_path / "project"
    folder = project / "resources" / "mine"
    (folder / "sub-a").mkdir(parents=True)
    (folder / "sub-a" / "a.nwb").write_bytes(dandi_nwb.read_bytes())
    monkeypatch.chdir(project)  # the workflow's directory, as Snakemake runs its jobs
    manifest = local_manifest("resources/mine")
    assert manifest["root"] == "resources/mine"
    assert manifest["assets"][0]["local_path"] == "resources/mine/sub-a/a.nwb"
    moved = project.rename(tmp_path / "moved")
    monkeypatch.chdir(moved)
    assert asset_source(manifest["assets"][0]) == "resources/mine/sub-a/a.nwb"
    # a folder outside the workflow's directory is recorded by its absolute path
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    outside = local_manifest(moved / "resources" / "mine")
    assert outside["assets"][0]["local_path"] == str((moved / "resources/mine/sub-a/a.nwb").resolve())


def test_download_is_verified_read_only_and_recorded(archive, tmp_path, dandi_nwb):
    manifest = acquire(spec(archive), tmp_path)
    root = tmp_path / "dandi" / DANDISET / VERSION
    target = root / NWB_PATH
    assert target.read_bytes() == dandi_nwb.read_bytes()
    assert not target.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # the same downstream format as a local dandiset folder
    local = local_manifest(dandi_nwb.parent.parent)
    assert set(local["assets"][0]) <= set(manifest["assets"][0])
    assert {k: manifest[k] for k in ("source", "dandiset", "version")} == {"source": "dandi", "dandiset": DANDISET,
                                                                         "version": VERSION}
    (asset,) = manifest["assets"]
    assert asset["path"] == NWB_PATH and asset["local_path"] == str(target.resolve())
    assert asset["size"] == target.stat().st_size
    assert asset["digest"]["dandi:dandi-etag"] == dandi_etag(target.read_bytes())
    # the resolution record: exactly what was used
    record = json.loads((root / "manifest.json").read_text())
    assert record["resolutions"] == {json.dumps([NWB_PATH]): [NWB_PATH]}
    assert record["assets"][NWB_PATH]["asset_id"] == asset["asset_id"]
    assert files_under(root) == [".lock", "manifest.json", NWB_PATH]  # no staging leftovers
    # the real client: server-info fallback, the download endpoint's redirect to the blob
    assert archive.paths("/server-info") and archive.paths("/api/info/")
    assert archive.paths(f"/api/assets/{asset['asset_id']}/download/")
    assert archive.paths(f"/blobs/{asset['asset_id']}")


def test_rerun_with_files_present_makes_no_request(archive, tmp_path):
    first = acquire(spec(archive), tmp_path)
    archive.close()  # nothing answers now: any request would fail
    again = acquire(spec(archive), tmp_path)
    assert again == first


def test_new_patterns_are_resolved_but_verified_files_are_not_fetched_again(archive, tmp_path):
    acquire(spec(archive), tmp_path)
    target = tmp_path / "dandi" / DANDISET / VERSION / NWB_PATH
    before = target.stat().st_mtime_ns
    archive.requests.clear()
    manifest = acquire(spec(archive, ["sub-sim/*.nwb"]), tmp_path)
    assert [a["path"] for a in manifest["assets"]] == [NWB_PATH, SECOND_PATH]
    blobs = archive.paths("/blobs/")
    assert blobs == [f"/blobs/{manifest['assets'][1]['asset_id']}"]
    assert target.stat().st_mtime_ns == before


def test_globs_match_across_listing_pages_in_config_order(archive, tmp_path):
    manifest = acquire(spec(archive, ["sub-other/*", "sub-*/*ecephys.nwb", NWB_PATH], stream=True), tmp_path)
    assert [a["path"] for a in manifest["assets"]] == [OTHER_PATH, NWB_PATH, SECOND_PATH]
    assert any("page=2" in p for p in archive.paths("/api/dandisets/"))


def test_shared_cache_dir_serves_a_second_workflow_without_requests(archive, tmp_path):
    shared = tmp_path / "shared-cache"
    acquire(spec(archive), shared)
    archive.close()
    other = acquire(spec(archive), shared)
    assert Path(other["assets"][0]["local_path"]).is_file()


def test_unknown_dandiset_is_named_with_close_matches(archive, tmp_path):
    entry = {"dandiset": "000998", "version": VERSION, "api_url": archive.api_url, "assets": [NWB_PATH]}
    with pytest.raises(DandiError, match=r"no dandiset '000998'.*close matches: \['000999'\]"):
        acquire(DandiSpec.from_config("brain", entry), tmp_path)
    assert not (tmp_path / "dandi" / "000998" / VERSION / "manifest.json").exists()


def test_unknown_version_is_named_with_close_matches(archive, tmp_path):
    entry = {"dandiset": DANDISET, "version": "0.240101.0002", "api_url": archive.api_url, "assets": [NWB_PATH]}
    with pytest.raises(DandiError, match=rf"datasets.brain.version.*'0.240101.0002'.*close matches: \['{VERSION}'"):
        acquire(DandiSpec.from_config("brain", entry), tmp_path)


@pytest.mark.parametrize(("pattern", "close"), [("sub-sim/sub-sim_ses-1_ecephy.nwb", NWB_PATH),
                                                ("sub-simm/*.nwb", NWB_PATH)])
def test_asset_path_or_glob_matching_nothing_is_named_with_close_matches(archive, tmp_path, pattern, close):
    with pytest.raises(DandiError, match=r"datasets.brain.assets") as error:
        acquire(spec(archive, [NWB_PATH, pattern]), tmp_path)
    assert repr(pattern) in str(error.value) and "close matches" in str(error.value) and close in str(error.value)
    assert not list((tmp_path / "dandi").rglob("*.nwb"))


def test_unreachable_server_is_named_after_bounded_retries(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    entry = {"dandiset": DANDISET, "version": VERSION, "api_url": url, "assets": [NWB_PATH]}
    with pytest.raises(DandiError, match=rf"{url}/info/ unreachable after 3 attempts"):
        acquire(DandiSpec.from_config("brain", entry), tmp_path)


def test_server_errors_are_retried_a_bounded_number_of_times(archive, tmp_path):
    archive.status = 503
    with pytest.raises(DandiError, match=rf"{archive.api_url}/info/ unreachable after 3 attempts: HTTP 503"):
        acquire(spec(archive), tmp_path)
    assert len(archive.requests) == nf_dandi.PROBE_ATTEMPTS


def test_draft_needs_allow_draft_and_warns(archive, tmp_path):
    with pytest.raises(DandiError, match=r"datasets.brain.version: 'draft'.*allow_draft: true"):
        spec(archive, version="draft")
    with pytest.warns(DraftVersionWarning, match="not reproducible"):
        draft = spec(archive, version="draft", allow_draft=True)
    manifest = acquire(draft, tmp_path)
    assert Path(manifest["assets"][0]["local_path"]) == (tmp_path / "dandi" / DANDISET / "draft" / NWB_PATH).resolve()


@pytest.mark.parametrize("pattern", ["../escape.nwb", "sub-sim/../../escape.nwb", "/etc/escape.nwb",
                                     "C:/escape.nwb", "sub-sim\\..\\escape.nwb"])
def test_unsafe_asset_paths_in_config_are_refused(archive, tmp_path, pattern):
    with pytest.raises(DandiError, match="absolute or leaves the dandiset folder"):
        acquire(spec(archive, [pattern]), tmp_path)
    assert not list(tmp_path.iterdir()) and not archive.requests


def test_unsafe_asset_paths_from_the_server_are_refused_before_anything_is_written(archive, tmp_path):
    archive.add(DANDISET, VERSION, "../escape.nwb", b"x" * 1000)
    with pytest.raises(DandiError, match=r"'../escape.nwb' is absolute or leaves the dandiset folder"):
        acquire(spec(archive, ["*escape.nwb"]), tmp_path / "cache")
    assert files_under(tmp_path) == ["cache/dandi/000999/0.240101.0001/.lock"]
    assert not archive.paths("/blobs/")


def test_checksum_mismatch_leaves_no_bad_file_and_keeps_the_verified_copy(archive, tmp_path):
    acquire(spec(archive), tmp_path)
    root = tmp_path / "dandi" / DANDISET / VERSION
    good = (root / NWB_PATH).read_bytes()
    second = next(a for a in archive.dandisets[DANDISET][VERSION].values() if a.path == SECOND_PATH)
    for asset in archive.dandisets[DANDISET][VERSION].values():
        archive.corrupt.add(asset.asset_id)
    with pytest.raises(DandiError, match=rf"{SECOND_PATH} \(asset {second.asset_id}\).*dandi-etag.*nothing was placed"):
        acquire(spec(archive, ["sub-sim/*.nwb"]), tmp_path)
    assert (root / NWB_PATH).read_bytes() == good
    assert not (root / SECOND_PATH).exists()
    assert files_under(root) == [".lock", "manifest.json", NWB_PATH]
    archive.corrupt.clear()  # the server is fixed: the next run fetches it, verified
    acquire(spec(archive, ["sub-sim/*.nwb"]), tmp_path)
    assert (root / SECOND_PATH).read_bytes() == second.data


def test_truncated_blob_says_the_file_is_shorter_than_advertised(archive, tmp_path):
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    archive.truncate[asset.asset_id] = len(asset.data) - 1000
    with pytest.raises(DandiError, match=rf"{NWB_PATH} \(asset {asset.asset_id}\) from .* failed: the server sent "
                                         rf"{len(asset.data) - 1000} of the {len(asset.data)} bytes the archive "
                                         rf"advertises.*nothing was placed"):
        acquire(spec(archive), tmp_path)
    assert not (tmp_path / "dandi" / DANDISET / VERSION / NWB_PATH).exists()


def test_interrupted_download_resumes_and_is_verified_whole(archive, tmp_path, monkeypatch):
    from dandi.dandiapi import RemoteBlobAsset

    # 64 KiB chunks instead of 8 MiB, so the bytes before the cut reach the partial file (the client's
    # DANDI_MAX_CHUNK_SIZE is read when its pytest plugin imports it, before any test can set it).
    monkeypatch.setattr(RemoteBlobAsset.get_download_file_iter, "__defaults__", (1 << 16,))
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    archive.cut[asset.asset_id] = 1
    manifest = acquire(spec(archive), tmp_path)
    assert Path(manifest["assets"][0]["local_path"]).read_bytes() == asset.data
    ranges = [r for _, path, r in archive.requests if path == f"/blobs/{asset.asset_id}"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0


def partial_download(tmp_path: Path, asset, data: bytes) -> Path:
    """What a killed run leaves: the client's partial file and the digests it was downloading against."""
    staging = Path(Layout(resources=str(tmp_path)).dandi_staging(DANDISET, VERSION, asset.asset_id))
    partial = staging / f"{Path(asset.path).name}.dandidownload"
    partial.mkdir(parents=True)
    (partial / "file").write_bytes(data)
    (partial / "checksum").write_text(json.dumps({"dandi-etag": dandi_etag(asset.data)}))
    return staging


def test_partial_file_of_a_killed_run_is_resumed(archive, tmp_path):
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    half = len(asset.data) // 2
    staging = partial_download(tmp_path, asset, asset.data[:half])
    manifest = acquire(spec(archive), tmp_path)
    assert Path(manifest["assets"][0]["local_path"]).read_bytes() == asset.data
    assert [r for _, path, r in archive.requests if path.startswith("/blobs/")] == [f"bytes={half}-"]
    assert not staging.exists()


def test_resumed_download_with_a_bad_prefix_fails_whole_file_verification(archive, tmp_path):
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    half = len(asset.data) // 2
    partial_download(tmp_path, asset, bytes(half))  # zeros, not the file's first half
    with pytest.raises(DandiError, match="dandi-etag"):
        acquire(spec(archive), tmp_path)
    assert not (tmp_path / "dandi" / DANDISET / VERSION / NWB_PATH).exists()


@pytest.mark.parametrize("good", [True, False])
def test_staged_file_left_by_a_killed_run_is_used_only_if_it_verifies(archive, tmp_path, good):
    asset = archive.dandisets[DANDISET][VERSION][NWB_PATH]
    staging = Path(Layout(resources=str(tmp_path)).dandi_staging(DANDISET, VERSION, asset.asset_id))
    staging.mkdir(parents=True)
    (staging / Path(NWB_PATH).name).write_bytes(asset.data if good else asset.data[::-1])
    manifest = acquire(spec(archive), tmp_path)
    assert Path(manifest["assets"][0]["local_path"]).read_bytes() == asset.data
    assert bool(archive.paths("/blobs/")) is not good


def test_changed_file_in_the_cache_is_never_overwritten(archive, tmp_path):
    acquire(spec(archive), tmp_path)
    target = tmp_path / "dandi" / DANDISET / VERSION / NWB_PATH
    target.chmod(0o644)
    target.write_bytes(b"edited")
    (tmp_path / "dandi" / DANDISET / VERSION / "manifest.json").unlink()
    with pytest.raises(DandiError, match="left untouched"):
        acquire(spec(archive), tmp_path)
    assert target.read_bytes() == b"edited"


def test_streaming_reads_over_http_and_matches_the_local_file(archive, tmp_path, dandi_nwb):
    manifest = acquire(spec(archive, stream=True), tmp_path)
    (asset,) = manifest["assets"]
    assert asset["local_path"] is None and asset["url"].endswith("/download/")
    assert not list((tmp_path / "dandi").rglob("*.nwb"))
    assert not archive.paths("/blobs/")
    response_spec = ResponseSpec(regions=["V1", "IT"])
    streamed, stimuli = responses_from_nwb(asset_source(asset), response_spec)
    local, local_stimuli = responses_from_nwb(asset_source({"path": NWB_PATH, "local_path": str(dandi_nwb)}),
                                              response_spec)
    np.testing.assert_array_equal(streamed.values, local.values)
    np.testing.assert_array_equal(stimuli.values, local_stimuli.values)
    ranges = [r for _, path, r in archive.requests if path.startswith("/blobs/")]
    assert ranges and all(r for r in ranges[1:])  # remfile: the size, then byte ranges
    assert json.loads(streamed.attrs["files"]) == [asset["url"]]


def test_config_checks_name_the_key():
    base = {"dandiset": DANDISET, "version": VERSION, "assets": [NWB_PATH]}
    for bad, message in [({"dandiset": 999}, "datasets.x.dandiset"), ({"version": "latest"}, "datasets.x.version"),
                         ({"assets": []}, "datasets.x.assets"), ({"instance": "dandy"}, r"close matches: \['dandi'"),
                         ({"instance": "dandi", "api_url": "http://h/api"}, "either 'instance' or 'api_url'"),
                         ({"api_url": "ftp://h"}, "datasets.x.api_url")]:
        with pytest.raises(DandiError, match=message):
            DandiSpec.from_config("x", {**base, **bad})
    assert DandiSpec.from_config("x", base).server == "https://api.dandiarchive.org/api"


def test_schema_requires_the_dandi_keys(repo):
    import jsonschema
    import yaml

    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    models = {"m": {"architecture": "alexnet_small"}}
    good = {"source": "dandi", "dandiset": DANDISET, "version": VERSION, "assets": ["a.nwb"], "regions": ["V1"]}
    jsonschema.validate({"datasets": {"d": good}, "models": models}, schema)
    for key in ("dandiset", "version", "assets", "regions"):
        with pytest.raises(jsonschema.ValidationError, match=repr(key)):
            jsonschema.validate({"datasets": {"d": {k: v for k, v in good.items() if k != key}}, "models": models},
                                schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"datasets": {"d": {**good, "version": "latest"}}, "models": models}, schema)


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("NEUROFIT_TEST_NETWORK") != "1", reason="talks to dandiarchive.org; "
                    "opt in with NEUROFIT_TEST_NETWORK=1")
def test_real_archive_download_and_stream(tmp_path):
    """DANDI:000006 (mouse ALM, small files): the latest published version, one ~0.3 MB asset."""
    from dandi.dandiapi import DandiAPIClient

    path = "sub-anm369963/sub-anm369963_ses-20170228.nwb"
    with DandiAPIClient.for_dandi_instance("dandi") as client:
        version = client.get_dandiset("000006").most_recent_published_version.identifier
    entry = {"dandiset": "000006", "version": version, "assets": [path]}
    manifest = acquire(DandiSpec.from_config("alm", entry), tmp_path)
    (asset,) = manifest["assets"]
    data = Path(asset["local_path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == asset["digest"]["dandi:sha2-256"]
    streamed = acquire(DandiSpec.from_config("alm", {**entry, "stream": True}), tmp_path / "stream")
    with open_nwb(asset_source(streamed["assets"][0])) as nwbfile:
        assert nwbfile.units is not None
