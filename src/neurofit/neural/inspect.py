"""``neurofit inspect PATH_OR_DANDI_URL``: what an NWB file holds that the responses stage can use
(intervals tables, units per region, stimulus templates and series, imaging planes) and a config
snippet that reads it. A DANDI URL is resolved with the dandi client and streamed (remfile + h5py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from neurofit.neural.inspect_trials import propose
from neurofit.neural.nwb import (
    IMAGE_SUFFIXES,
    NWBContentError,
    intervals_tables,
    is_url,
    open_nwb_io,
    read_units,
    roi_series,
    table_frame,
    template_containers,
)
from neurofit.neural.regions import decode, parse_location

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
STIMULUS_FOLDER_PLACEHOLDER = "PATH/TO/STIMULUS/FOLDER"


# -- DANDI URLs ------------------------------------------------------------------------------
def dandi_target(url: str) -> dict[str, Any]:
    """What a DANDI URL names, parsed by the dandi client: ``kind`` (dandiset, asset_path, folder,
    asset_id), ``api``, ``dandiset``, ``version``, ``path``, ``asset_id`` (absent parts are None)."""
    from dandi.dandiarchive import parse_dandi_url

    parsed = parse_dandi_url(url)
    kind = {"DandisetURL": "dandiset", "AssetItemURL": "asset_path", "AssetPathPrefixURL": "asset_path",
            "AssetFolderURL": "folder", "AssetGlobURL": "folder", "BaseAssetIDURL": "asset_id",
            "AssetIDURL": "asset_id"}.get(type(parsed).__name__, type(parsed).__name__)
    return {"kind": kind, "api": parsed.instance.api, "dandiset": getattr(parsed, "dandiset_id", None),
            "version": getattr(parsed, "version_id", None), "path": getattr(parsed, "path", None),
            "asset_id": getattr(parsed, "asset_id", None)}


def is_dandi_url(source: str) -> bool:
    text = str(source)
    return text.upper().startswith("DANDI:") or (is_url(text) and "dandiarchive.org" in text
                                                 and "amazonaws.com" not in text)


def resolve_dandi(url: str, asset: str | None = None) -> tuple[str, str, list[str]]:
    """The NWB asset of a DANDI URL to inspect (``asset``, else the first): (its path, the URL of its
    bytes, the other NWB asset paths), via the dandi client. Only the chosen asset's URL is asked for."""
    from dandi.dandiarchive import parse_dandi_url

    with parse_dandi_url(url).navigate(strict=True) as (_client, _dandiset, assets):
        nwb = {a.path: a for a in assets if a.path.endswith(".nwb")}
        if not nwb:
            raise NWBContentError(f"{url}: names no NWB asset")
        chosen = asset or next(iter(nwb))
        if chosen not in nwb:
            raise NWBContentError(f"{url}: no NWB asset {chosen!r}; NWB assets: {list(nwb)[:20]}")
        content = nwb[chosen].get_content_url(follow_redirects=1, strip_query=True)
    return chosen, content, [p for p in nwb if p != chosen]


# -- what a file holds ------------------------------------------------------------------------
def _preview(values: Any, n: int) -> list[Any]:
    out = []
    for v in list(values)[:n]:
        v = decode(v)
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float):
            v = round(v, 4)
        out.append(v if isinstance(v, int | float | str | bool) or v is None else str(v)[:60])
    return out


def _shape(data: Any) -> list[int]:
    return list(getattr(data, "shape", np.shape(data)))


def inspect_nwb(source: str | Path, n_values: int = 3) -> dict[str, Any]:
    """A JSON-able description of one NWB file (local path or http(s) URL)."""
    with open_nwb_io(source) as io:
        nwbfile = io.read()
        report: dict[str, Any] = {
            "file": str(source), "nwb_version": io.nwb_version[0],
            "identifier": nwbfile.identifier, "session_id": nwbfile.session_id,
            "session_description": nwbfile.session_description,
        }
        tables = {}
        for name, table in intervals_tables(nwbfile).items():
            frame = table_frame(table)
            columns = {}
            for column in frame.columns:
                values = frame[column]
                dtype = "str" if values.map(lambda v: isinstance(v, str)).all() else str(values.dtype)
                columns[column] = {"dtype": dtype, "n_unique": int(values.nunique()),
                                   "values": _preview(values, n_values)}
            tables[name] = {"rows": len(frame), "columns": columns}
        report["intervals"] = tables
        report["units"] = _units(nwbfile, source)
        report["stimulus_templates"] = {
            name: {"type": type(c).__name__, **_template_info(c)} for name, c in template_containers(nwbfile).items()}
        report["stimulus_series"] = {name: _series_info(s, n_values) for name, s in (nwbfile.stimulus or {}).items()}
        report["imaging_planes"] = {name: {"location": str(decode(p.location)), "indicator": p.indicator,
                                           "description": p.description}
                                    for name, p in (nwbfile.imaging_planes or {}).items()}
        report["roi_series"] = [
            {"path": path, "container": kind, "rois": len(s.rois.data), "samples": len(s.data),
             "plane": s.rois.table.imaging_plane.name, "location": str(decode(s.rois.table.imaging_plane.location))}
            for path, kind, s in roi_series(nwbfile)]
    return report


def _units(nwbfile: Any, source: str | Path) -> dict[str, Any] | None:
    if nwbfile.units is None or len(nwbfile.units) == 0:
        return None
    try:
        units = read_units(nwbfile, source, unsorted="sort")
    except NWBContentError as error:
        return {"count": len(nwbfile.units), "columns": list(nwbfile.units.colnames), "error": str(error)}
    regions: dict[str, int] = {}
    for location in units.location:
        region = parse_location(location)
        regions[region] = regions.get(region, 0) + 1
    return {"count": len(units.unit_id), "columns": list(nwbfile.units.colnames),
            "regions": dict(sorted(regions.items(), key=lambda kv: -kv[1])),
            "location_examples": sorted(set(units.location))[:3],
            "unsorted_spike_times": units.n_unsorted,
            "scalar_columns": {k: _preview(dict.fromkeys(v.tolist()), 5) for k, v in units.columns.items()}}


def _template_info(container: Any) -> dict[str, Any]:
    if hasattr(container, "images"):
        images = list(container.images.values())
        shapes = sorted({tuple(_shape(img.data)) for img in images})
        return {"count": len(images), "shapes": [list(s) for s in shapes], "names": [i.name for i in images[:5]]}
    shape = _shape(container.data)
    return {"count": shape[0] if shape else 0, "shapes": [shape[1:]], "names": []}


def _series_info(series: Any, n_values: int) -> dict[str, Any]:
    info: dict[str, Any] = {"type": type(series).__name__, "samples": _shape(series.data)[0] if _shape(series.data)
                            else 0}
    external = getattr(series, "external_file", None)
    if external is not None:
        info["external_files"] = _preview(external, n_values)
        info["samples"] = len(external)
    target = getattr(series, "indexed_images", None) or getattr(series, "indexed_timeseries", None)
    if target is not None:
        info["indexes"] = target.name
    return info


# -- a config snippet ------------------------------------------------------------------------
def _looks_like_file(values: list[Any], suffixes: tuple[str, ...]) -> bool:
    return bool(values) and all(isinstance(v, str) and v.lower().endswith(suffixes) for v in values)


def suggest_responses(report: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A ``responses:`` block for the file and notes on the choices made (and the alternatives)."""
    notes: list[str] = []
    tables = report["intervals"]
    templates = report["stimulus_templates"]
    block: dict[str, Any] = {}
    index_series = [n for n, s in report["stimulus_series"].items() if s.get("indexes")]
    if templates and index_series:
        block.update(adapter="templates", index_series=index_series[0])
    elif templates:
        counts = {n: t["count"] for n, t in templates.items()}
        candidates = [(t, c) for t, info in tables.items() for c, col in info["columns"].items()
                      if c in ("frame", "image_index", "stimulus_id", "image_name")
                      or (col["dtype"].startswith(("int", "float")) and c not in ("start_time", "stop_time", "id")
                          and all(isinstance(v, int | float) and 0 <= v < max(counts.values()) for v in col["values"]))]
        candidates.sort(key=lambda tc: ("presentation" not in tc[0], tc[1] not in ("frame", "image_index")))
        block["adapter"] = "templates"
        if len(templates) > 1:
            block["templates"] = next(iter(templates))
            notes.append(f"several stimulus templates: {sorted(templates)}")
        if candidates:
            block.update(table=candidates[0][0], stimulus_column=candidates[0][1])
            if len(candidates) > 1:
                notes.append("other candidate (table, column): " + ", ".join(f"{t}/{c}" for t, c in candidates[1:6]))
        else:
            notes.append("no table column looks like an index into the templates: set table and stimulus_column")
    else:
        images, videos, strings = [], [], []
        for t, info in tables.items():
            for c, col in info["columns"].items():
                if _looks_like_file(col["values"], tuple(IMAGE_SUFFIXES)):
                    images.append((t, c))
                elif _looks_like_file(col["values"], VIDEO_SUFFIXES):
                    videos.append((t, c))
                elif col["values"] and all(isinstance(v, str) for v in col["values"]):
                    strings.append((t, c))
        chosen = (images or strings or [(next(iter(tables), "trials"), "STIMULUS_COLUMN")])[0]
        block.update(adapter="ophys" if report["roi_series"] and not report["units"] else "table_folder",
                     table=chosen[0], stimulus_column=chosen[1],
                     stimuli={"path": STIMULUS_FOLDER_PLACEHOLDER, "pattern": "{id}"})
        notes.append("the file holds no stimulus images: put them in a folder, one file per stimulus id, "
                     "and set stimuli.path (pattern maps an id to a file name)")
        if images[1:]:
            notes.append("other columns naming image files: " + ", ".join(f"{t}/{c}" for t, c in images[1:]))
        if videos:
            notes.append("columns naming videos (convert to frames first): " + ", ".join(f"{t}/{c}" for t, c in videos))
        if not images:
            notes.append(f"no column names image files; {chosen[0]}/{chosen[1]} is a guess")
    if report["roi_series"] and not report["units"]:
        block["adapter"] = "ophys"
        if not any(s["container"] == "DfOverF" for s in report["roi_series"]):
            block["ophys_series"] = report["roi_series"][0]["path"]
    block["window_ms"] = [70, 170]
    notes.append("window_ms: the Brain-Score convention for IT; calcium responses need a longer window")
    units = report["units"] or {}
    if units.get("unsorted_spike_times"):
        block["unsorted_spike_times"] = "sort"
        notes.append(f"{units['unsorted_spike_times']} unit(s) store spike times unsorted: they are sorted on read")
    return block, notes


def _dataset_entry(source: str, dandi: dict[str, Any] | None, asset_path: str | None) -> tuple[str, dict[str, Any]]:
    if dandi is not None:
        entry: dict[str, Any] = {"source": "dandi", "dandiset": dandi["dandiset"] or "DANDISET_ID",
                                 "version": dandi["version"] or "VERSION"}
        entry["assets"] = [asset_path or dandi.get("path") or "**/*.nwb"]
        return f"dandi{entry['dandiset']}", entry
    path = Path(source).resolve()
    root = next((p for p in path.parents if (p / "dandiset.yaml").is_file()), None)
    if root is None:  # the DANDI layout: <dandiset>/sub-<subject>/<file>.nwb
        root = path.parent.parent if path.parent.name.startswith("sub-") else path.parent
    name = root.name if root.name.isdigit() else path.stem.split("_")[0]
    return name, {"source": "local", "path": str(root), "assets": [path.relative_to(root).as_posix()]}


def config_snippet(report: dict[str, Any], source: str, dandi: dict[str, Any] | None = None,
                   asset_path: str | None = None) -> str:
    """YAML for ``datasets:`` that reads this file, with comments on what was guessed."""
    name, entry = _dataset_entry(source, dandi, asset_path)
    block, notes = suggest_responses(report)
    regions = list((report["units"] or {}).get("regions", {}))
    if not regions:
        regions = sorted({s["location"] for s in report["roi_series"]})
    entry["regions"] = regions or ["REGION"]
    entry["responses"] = block
    text = yaml.safe_dump({"datasets": {name: entry}}, sort_keys=False, default_flow_style=None, width=100)
    return "".join(f"# {note}\n" for note in notes) + text


# -- text ------------------------------------------------------------------------------------
def format_report(report: dict[str, Any], snippet: str) -> str:
    lines = [f"file: {report['file']}",
             f"NWB {report['nwb_version']}; identifier {report['identifier']!r}; session {report['session_id']!r}",
             "", "intervals tables:"]
    for name, table in report["intervals"].items() or []:
        lines.append(f"  {name}: {table['rows']} rows")
        for column, info in table["columns"].items():
            lines.append(f"    {column:<28} {info['dtype']:<8} {info['n_unique']:>6} unique  e.g. {info['values']}")
    if not report["intervals"]:
        lines.append("  (none)")
    units = report["units"]
    lines += ["", "units:" if units else "units: (none)"]
    if units:
        lines.append(f"  {units['count']} units; columns {units['columns']}")
        if "error" in units:
            lines.append(f"  cannot read: {units['error']}")
        for region, count in units.get("regions", {}).items():
            lines.append(f"  {region:<30} {count}")
        if units.get("location_examples"):
            lines.append(f"  location strings, e.g. {units['location_examples']}")
        if units.get("unsorted_spike_times"):
            lines.append(f"  {units['unsorted_spike_times']} unit(s) with unsorted spike times")
    lines += ["", "stimulus templates:" if report["stimulus_templates"] else "stimulus templates: (none)"]
    for name, info in report["stimulus_templates"].items():
        lines.append(f"  {name} ({info['type']}): {info['count']} images, shapes {info['shapes']}, "
                     f"e.g. {info['names']}")
    lines += ["", "stimulus series:" if report["stimulus_series"] else "stimulus series: (none)"]
    for name, info in report["stimulus_series"].items():
        extra = f", external files e.g. {info['external_files']}" if "external_files" in info else ""
        extra += f", indexes {info['indexes']}" if "indexes" in info else ""
        lines.append(f"  {name} ({info['type']}): {info['samples']} samples{extra}")
    lines += ["", "imaging planes:" if report["imaging_planes"] else "imaging planes: (none)"]
    for name, info in report["imaging_planes"].items():
        lines.append(f"  {name}: location {info['location']!r}, indicator {info['indicator']!r}")
    for series in report["roi_series"]:
        lines.append(f"  {series['path']} ({series['container']}): {series['rois']} ROIs x {series['samples']} "
                     f"samples in {series['plane']} ({series['location']})")
    lines += ["", "config snippet (add to config.yaml; check the commented guesses):", "", snippet]
    return "\n".join(lines)


def inspect_source(source: str, asset: str | None = None) -> tuple[dict[str, Any], str, list[str]]:
    """Inspect a local file or a DANDI URL: (report, config snippet, other NWB assets not inspected)."""
    if is_dandi_url(source):
        target = dandi_target(source)
        path, content, others = resolve_dandi(source, asset)
        report = inspect_nwb(content)
        report["asset"] = path
        return report, propose(report, config_snippet(report, source, target, path), source, target, path), others
    report = inspect_nwb(source)
    return report, propose(report, config_snippet(report, source), source), []
