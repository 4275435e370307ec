"""What a report must say about how its numbers were made: the resolved config, the software that ran,
and the data used (dandiset, version, asset digests, units kept and dropped per region).

The HTML pages are self-contained (inline CSS, no scripts) so the Snakemake report embeds them as is.
"""

from __future__ import annotations

import html
import json
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from neurofit.report.html import page, table

# Distributions whose versions decide the numbers or the files (the import name can differ).
PACKAGES = ["neurofit", "numpy", "scipy", "scikit-learn", "torch", "xarray", "h5netcdf", "h5py", "pandas",
            "pyarrow", "matplotlib", "pynwb", "hdmf", "dandi", "remfile", "snakemake", "himalaya"]

def git_commit(folder: str | Path) -> str | None:
    """The commit of the workflow's checkout (``+dirty`` when it has uncommitted changes), or None
    outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def software_versions(workflow_dir: str | Path | None = None) -> dict[str, Any]:
    """Python, platform, the installed versions of :data:`PACKAGES` (None where not installed) and the
    workflow's git commit. Reads package metadata only, so it is cheap enough for DAG-build time."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": versions,
        "workflow_commit": git_commit(workflow_dir) if workflow_dir else None,
    }


def write_software(versions: Mapping[str, Any], json_out: str | Path, html_out: str | Path) -> None:
    Path(json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(json_out).write_text(json.dumps(versions, indent=2, sort_keys=True))
    rows = [["python", versions["python"]], ["platform", versions["platform"]],
            ["workflow commit", versions.get("workflow_commit") or "not a git checkout"]]
    rows += [[name, version or "not installed"] for name, version in versions["packages"].items()]
    Path(html_out).write_text(page("Software versions", table(["component", "version"], rows)))


def write_config(config: Mapping[str, Any], out: str | Path) -> None:
    """The config as the workflow ran it: after validation, with the schema's defaults filled in."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("# The resolved config of this run (schema defaults filled in).\n"
                         + yaml.safe_dump(json.loads(json.dumps(dict(config), default=str)), sort_keys=False))


def units_by_region(responses_path: str | Path) -> dict[str, int]:
    """Neuroids kept per region in a responses artefact (after the stage's region map and filters): the
    responses of an image dataset or the condition PSTHs of a trial dataset (both carry ``region``)."""
    import numpy as np
    import xarray as xr

    with xr.open_dataset(responses_path, engine="h5netcdf") as responses:
        regions, counts = np.unique(responses["region"].values.astype(str), return_counts=True)
    return {str(r): int(c) for r, c in zip(regions, counts, strict=True)}


def _digests(asset: Mapping[str, Any]) -> str:
    digest = asset.get("digest") or {}
    if isinstance(digest, Mapping):
        return "; ".join(f"{k}: {v}" for k, v in digest.items())
    return str(digest)


def _unit_rows(manifest: Mapping[str, Any], kept: Mapping[str, int]) -> list[list[Any]]:
    """Kept per region from the responses; dropped per region (and why) where the manifest records
    unit filters as ``units: {region: {kept, dropped, ...}}`` or ``unit_filters: [{name, kept, dropped}]``."""
    recorded = manifest.get("units") if isinstance(manifest.get("units"), Mapping) else {}
    rows = []
    for region in sorted(set(kept) | set(recorded)):
        info = recorded.get(region, {}) if isinstance(recorded.get(region, {}), Mapping) else {}
        reasons = {k: v for k, v in info.items() if k not in ("kept", "dropped")}
        rows.append([region, kept.get(region, info.get("kept", 0)), info.get("dropped", "not recorded"),
                     json.dumps(reasons) if reasons else ""])
    return rows


def manifest_section(name: str, manifest: Mapping[str, Any], kept: Mapping[str, int]) -> str:
    """One dataset's part of the data page: identity, assets with digests, units kept and dropped,
    then every other manifest entry verbatim (what the data stage recorded is shown, not summarised away)."""
    identity = [["source", manifest.get("source")], ["dandiset", manifest.get("dandiset")],
                ["version", manifest.get("version")]]
    for key in ("instance", "api_url", "root"):
        if key in manifest:
            identity.append([key, manifest[key]])
    assets = [[a.get("path"), a.get("asset_id", ""), a.get("size"), _digests(a)] for a in manifest.get("assets", [])]
    shown = {"source", "dandiset", "version", "instance", "api_url", "root", "assets", "units"}
    rest = {k: v for k, v in manifest.items() if k not in shown}
    parts = [f"<h2>{html.escape(name)}</h2>", table(["field", "value"], identity),
             f"<h3>assets ({len(assets)})</h3>", table(["path", "asset id", "size (bytes)", "digests"], assets),
             "<h3>units per region</h3>", table(["region", "kept", "dropped", "filters"], _unit_rows(manifest, kept))]
    if "unit_filters" in manifest:
        rest.pop("unit_filters")
        filters = manifest["unit_filters"]
        rows = [[f.get("name", f.get("column", "")), f.get("kept"), f.get("dropped"), json.dumps(f)]
                for f in (filters if isinstance(filters, list) else [])]
        parts += ["<h3>unit filters</h3>", table(["filter", "kept", "dropped", "settings"], rows)]
    if rest:
        text = html.escape(json.dumps(rest, indent=2, default=str))
        parts += ["<h3>other manifest entries</h3>", f"<pre>{text}</pre>"]
    return "\n".join(parts)


def write_data_manifest(manifests: Mapping[str, str], responses: Mapping[str, str], html_out: str | Path,
                        json_out: str | Path) -> None:
    """The data page of the report (HTML) and the same records gathered in one JSON file."""
    sections, gathered = [], {}
    for name in manifests:
        manifest = json.loads(Path(manifests[name]).read_text())
        kept = units_by_region(responses[name])
        gathered[name] = {"manifest": manifest, "units_kept": kept}
        sections.append(manifest_section(name, manifest, kept))
    Path(html_out).parent.mkdir(parents=True, exist_ok=True)
    Path(html_out).write_text(page("Data manifest", "\n".join(sections)))
    Path(json_out).write_text(json.dumps(gathered, indent=2, default=str))
