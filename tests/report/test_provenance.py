"""Provenance records: the resolved config round-trips, software versions are read, and the data page
shows the dandiset, version, asset digests and the units kept and dropped per region."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from neurofit.report import provenance
from neurofit.report.html import write_table_page


def test_resolved_config_round_trips(tmp_path):
    config = {"results": "results/x", "datasets": {"sim": {"source": "simulated", "simulate": {"n_stimuli": 48}}},
              "models": {"u": {"objective": "untrained", "layers": ["conv1", "fc"]}},
              "encoding": {"normalisation": "r^2/c", "metrics": ["ridge"]}}
    out = tmp_path / "config.yaml"
    provenance.write_config(config, out)
    assert yaml.safe_load(out.read_text()) == config


def test_software_versions_and_pages(repo, tmp_path):
    versions = provenance.software_versions(repo)
    assert versions["packages"]["numpy"] == np.__version__
    assert versions["packages"]["neurofit"] is not None
    assert versions["workflow_commit"] is None or len(versions["workflow_commit"].split("+")[0]) == 40
    provenance.write_software(versions, tmp_path / "software.json", tmp_path / "software.html")
    assert json.loads((tmp_path / "software.json").read_text()) == json.loads(json.dumps(versions))
    page = (tmp_path / "software.html").read_text()
    assert f"<td>numpy</td><td>{np.__version__}</td>" in page


def test_git_commit_outside_a_checkout_is_none(tmp_path):
    assert provenance.git_commit(tmp_path) is None


def write_responses(path, regions):
    xr.DataArray(np.zeros((2, len(regions))), dims=("presentation", "neuroid"),
                 coords={"region": ("neuroid", regions)}).to_netcdf(path, engine="h5netcdf")


def test_data_manifest_page_shows_digests_and_units(tmp_path):
    manifest = {
        "source": "dandi", "dandiset": "000021", "version": "0.251116.2246",
        "assets": [{"path": "sub-1/sub-1_ses-2.nwb", "asset_id": "abc-123", "size": 2048,
                    "digest": {"dandi:dandi-etag": "e" * 32 + "-1", "dandi:sha2-256": "f" * 64}}],
        "units": {"VISp": {"kept": 3, "dropped": 5, "quality": "good"}, "VISam": {"kept": 0, "dropped": 4}},
        "unit_filters": [{"name": "isi_violations", "kept": 3, "dropped": 9, "max": 0.5}],
        "note": "<script>alert(1)</script>",
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    write_responses(tmp_path / "responses.nc", ["VISp", "VISp", "VISp", "VISl"])
    html_out, json_out = tmp_path / "data.html", tmp_path / "data.json"
    provenance.write_data_manifest({"allen": str(tmp_path / "manifest.json")},
                                   {"allen": str(tmp_path / "responses.nc")}, html_out, json_out)
    page = html_out.read_text()
    for text in ("000021", "0.251116.2246", "sub-1/sub-1_ses-2.nwb", "abc-123", "e" * 32 + "-1", "f" * 64,
                 "isi_violations"):
        assert text in page, text
    assert "<tr><td>VISp</td><td>3</td><td>5</td>" in page  # kept from responses, dropped from manifest
    assert "<tr><td>VISl</td><td>1</td><td>not recorded</td>" in page
    assert "<tr><td>VISam</td><td>0</td><td>4</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    gathered = json.loads(json_out.read_text())
    assert gathered["allen"]["units_kept"] == {"VISl": 1, "VISp": 3}
    assert gathered["allen"]["manifest"] == manifest


def test_table_page_rounds_numbers(tmp_path):
    pd.DataFrame({"model": ["a"], "score": [0.123456], "n_neuroids": [8]}).to_csv(tmp_path / "t.csv", index=False)
    write_table_page(tmp_path / "t.csv", tmp_path / "t.html", "Predictivity")
    page = (tmp_path / "t.html").read_text()
    assert "<td>a</td><td>0.123</td><td>8</td>" in page and "1 rows" in page
