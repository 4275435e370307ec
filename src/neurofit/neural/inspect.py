"""``neurofit inspect PATH_OR_DANDI_URL``: what an NWB file holds that the responses stage can use
(intervals tables, units per region, stimulus templates and series, imaging planes) and a config
snippet that reads it. A DANDI URL is resolved with the dandi client and streamed (remfile + h5py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from neurofit.neural.inspect_trials import propose
from neurofit.neural.nwb import (
    STIMULUS_FILE_SUFFIXES,
    NWBContentError,
    intervals_tables,
    open_nwb_io,
    read_units,
    roi_series,
    table_frame,
    template_containers,
)
from neurofit.neural.regions import decode, parse_location
from neurofit.paths import is_url

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
                                   "values": _preview(values, n_values), **_repeats(values)}
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


def _repeats(values: Any) -> dict[str, int]:
    """How often values recur: a noise ceiling needs stimuli shown at least twice."""
    counts = values.value_counts()
    return {"n_repeated": int((counts >= 2).sum()), "max_repeats": int(counts.max()) if len(counts) else 0}


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
                if _looks_like_file(col["values"], STIMULUS_FILE_SUFFIXES):
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
    block["window_ms"], window_note = window_proposal(_regions(report), block["adapter"] == "ophys")
    notes.append(window_note)
    units = report["units"] or {}
    if units.get("unsorted_spike_times"):
        block["unsorted_spike_times"] = "sort"
        notes.append(f"{units['unsorted_spike_times']} unit(s) store spike times unsorted: they are sorted on read")
    return block, notes


# Response windows with a published convention, per region (after onset, ms). Elsewhere no window is
# proposed: the latency and duration of responses differ between regions, species and stimuli.
REGION_WINDOWS = {"IT": (70, 170), "V4": (70, 170)}
WINDOW_SOURCE = "Majaj et al. 2015, the Brain-Score convention for {regions}"
CHOOSE_WINDOW = "CHOOSE [start_ms, stop_ms]"


def _regions(report: dict[str, Any]) -> list[str]:
    regions = list((report["units"] or {}).get("regions", {}))
    return regions or sorted({s["location"] for s in report["roi_series"]})


def window_proposal(regions: list[str], ophys: bool) -> tuple[Any, str]:
    """``window_ms`` for the snippet and its comment: a published convention when every region has the
    same one, else a placeholder that fails validation until a window is chosen."""
    known = {REGION_WINDOWS[r] for r in regions if r in REGION_WINDOWS}
    if regions and not ophys and len(known) == 1 and all(r in REGION_WINDOWS for r in regions):
        window = list(next(iter(known)))
        return window, f"window_ms: {window} ms after onset ({WINDOW_SOURCE.format(regions=' and '.join(regions))})"
    what = "calcium (ΔF/F) responses, which rise and decay over hundreds of ms" if ophys else (
        f"regions {regions or ['?']}")
    return CHOOSE_WINDOW, (f"window_ms must be chosen: there is no standard window for {what}; pick one from "
                           f"the responses' latency and duration (e.g. a PSTH), in ms after onset")


def inspect_warnings(report: dict[str, Any], block: dict[str, Any]) -> list[str]:
    """What makes the file a poor fit for an encoding model with a noise ceiling, and filters to consider."""
    warnings = []
    table = report["intervals"].get(block.get("table", ""), {})
    column = table.get("columns", {}).get(block.get("stimulus_column", ""))
    if column is not None and column["n_unique"]:
        repeated, unique = column["n_repeated"], column["n_unique"]
        if repeated < max(2, unique / 2):
            warnings.append(f"too few repeats for a noise ceiling: {block['table']}/{block['stimulus_column']} has "
                            f"{unique} distinct stimuli in {table['rows']} rows and only {repeated} are shown twice or "
                            f"more (at most {column['max_repeats']} times); the ceiling needs repeated stimuli")
    if not report["stimulus_templates"] and not any("indexes" in s for s in report["stimulus_series"].values()):
        warnings.append("no stimulus images in the file: the images must come from elsewhere (a folder, "
                        "responses.stimuli.path)")
    units = report["units"] or {}
    if units.get("count") == 1:
        warnings.append("one unit in the file: one neuroid, so scores per region rest on a single unit; add more "
                        "files (sessions) of the dandiset to the assets")
    quality = [c for c in units.get("scalar_columns", {}) if QUALITY_COLUMN.search(c)]
    if quality:
        column = quality[0]
        warnings.append(f"unit quality column(s) {quality}: consider keeping good units only, e.g. "
                        f"responses.units.quality: {{column: {column}, keep: {units['scalar_columns'][column][:1]}}}")
    flags = [c for c, col in table.get("columns", {}).items() if QUALITY_COLUMN.search(c) and col["n_unique"] <= 3]
    if flags:
        value = table["columns"][flags[0]]["values"][0] if table["columns"][flags[0]]["values"] else 1
        warnings.append(f"{block['table']} has quality/flag column(s) {flags}: consider a row filter, e.g. "
                        f"responses.query: \"{flags[0]} == {value!r}\" (check which value marks good rows)")
    return warnings


QUALITY_COLUMN = re.compile(r"(^|_)(is_good|good|quality|isolation|snr|valid|ok|include|reject|outlier)(_|$)", re.I)


def _dataset_entry(source: str, dandi: dict[str, Any] | None,
                   asset_path: str | None) -> tuple[str, dict[str, Any], list[str]]:
    """The dataset entry (name, entry, notes): ``source: dandi`` for a DANDI URL, ``source: local`` for a file."""
    if dandi is None and is_url(source):
        return "DATASET", {"source": "dandi", "dandiset": "DANDISET_ID", "version": "VERSION",
                           "assets": ["ASSET_PATH"]}, [
            f"{source} is not a DANDI dandiset or asset URL this command understands: fill in the dandiset, "
            f"version and asset path (or pass a DANDI URL, with --api-url for a server other than dandiarchive.org)"]
    if dandi is not None:
        entry: dict[str, Any] = {"source": "dandi", "dandiset": dandi["dandiset"] or "DANDISET_ID",
                                 "version": dandi["version"] or "VERSION"}
        entry["assets"] = [asset_path or dandi.get("path") or "**/*.nwb"]
        if dandi.get("api_url"):
            entry["api_url"] = dandi["api_url"]
        notes = [] if dandi["dandiset"] and dandi["version"] else [
            "the URL names an asset but not its dandiset and version: fill in dandiset and version (DANDI "
            "shows them on the asset's page)"]
        return f"dandi{dandi['dandiset'] or ''}", entry, notes
    path = Path(source).resolve()
    root = next((p for p in path.parents if (p / "dandiset.yaml").is_file()), None)
    if root is None:  # the DANDI layout: <dandiset>/sub-<subject>/<file>.nwb
        root = path.parent.parent if path.parent.name.startswith("sub-") else path.parent
    name = root.name if root.name.isdigit() else path.stem.split("_")[0]
    return name, {"source": "local", "path": str(root), "assets": [path.relative_to(root).as_posix()]}, []


def config_snippet(report: dict[str, Any], source: str, dandi: dict[str, Any] | None = None,
                   asset_path: str | None = None) -> str:
    """YAML for ``datasets:`` that reads this file, with comments on what was guessed."""
    name, entry, entry_notes = _dataset_entry(source, dandi, asset_path)
    block, notes = suggest_responses(report)
    regions = _regions(report)
    entry["regions"] = regions or ["REGION"]
    entry["responses"] = block
    notes += [f"warning: {w}" for w in inspect_warnings(report, block)]
    notes += entry_notes
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


def inspect_source(source: str, asset: str | None = None,
                   api_url: str | None = None) -> tuple[dict[str, Any], str, list[str]]:
    """Inspect a local file or a DANDI URL (of any DANDI instance, given its ``api_url``): (report, config
    snippet, other NWB assets not inspected)."""
    if api_url is not None and not is_url(source):
        raise NWBContentError(f"--api-url {api_url}: {source} is not a URL; --api-url goes with a DANDI URL of "
                              f"that server (a dandiset, an asset path or an asset download URL)")
    if api_url is not None or is_dandi_url(source):
        target = server_target(source, api_url) if api_url is not None else dandi_target(source)
        path, content, others = (resolve_on_server(target, api_url, asset) if api_url is not None
                                 else resolve_dandi(source, asset))
        report = inspect_nwb(content)
        report["asset"] = path
        report["warnings"] = _report_warnings(report)
        return report, propose(report, config_snippet(report, source, target, path), source, target, path), others
    report = inspect_nwb(source)
    report["warnings"] = _report_warnings(report)
    return report, propose(report, config_snippet(report, source), source), []


def _report_warnings(report: dict[str, Any]) -> list[str]:
    block, _ = suggest_responses(report)
    return inspect_warnings(report, block)


# -- any DANDI instance (--api-url) -----------------------------------------------------------
ASSET_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VERSION_ID = r"draft|[0-9]+\.[0-9]+\.[0-9]+"


def server_target(url: str, api_url: str) -> dict[str, Any]:
    """What a URL of the DANDI server at ``api_url`` names, parsed without the dandi client's table of known
    instances: web pages (``/dandiset/<id>[/<version>][/files?location=<path>]``) and API URLs
    (``/dandisets/<id>/versions/<v>/assets/[<asset id>/download/ | ?path=<path>]``, ``/assets/<id>/download/``)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    dandiset = re.search(r"/dandisets?/([0-9]{6})(?:/(?:versions/)?(" + VERSION_ID + "))?(?=/|$)", parts.path)
    asset_id = re.search(r"/assets/(" + ASSET_ID + ")(?=/|$)", parts.path)
    path = query.get("path") or query.get("location")
    if dandiset is None and asset_id is None:
        raise NWBContentError(f"{url}: names no dandiset or asset of the DANDI server {api_url} (expected e.g. "
                              f".../dandiset/000123/0.230101.1200 or .../api/assets/<asset id>/download/)")
    kind = "asset_id" if asset_id else ("asset_path" if path and not path.endswith("/") else "dandiset")
    return {"kind": kind, "api": api_url.rstrip("/"), "api_url": api_url.rstrip("/"),
            "dandiset": dandiset[1] if dandiset else None, "version": dandiset[2] if dandiset else None,
            "path": unquote(path).strip("/") if path else None, "asset_id": asset_id[1] if asset_id else None}


def resolve_on_server(target: dict[str, Any], api_url: str, asset: str | None) -> tuple[str, str, list[str]]:
    """(asset path, URL of its bytes, other NWB asset paths) on the server at ``api_url``; fills in the
    target's version (the most recent published one, else the draft) when the URL names none."""
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError

    with DandiAPIClient(api_url=api_url.rstrip("/")) as client:
        try:
            if target["dandiset"] is None:  # an asset download URL without its dandiset
                remote = client.get_asset(target["asset_id"])
                return remote.path, remote.get_content_url(follow_redirects=1, strip_query=True), []
            dandiset = client.get_dandiset(target["dandiset"], target["version"], lazy=False)
            target["version"] = dandiset.version_id
            if target["asset_id"]:
                remote = dandiset.get_asset(target["asset_id"])
                return remote.path, remote.get_content_url(follow_redirects=1, strip_query=True), []
            prefix = target["path"] or ""  # a folder or an asset path named by the URL
            nwb = {a.path: a for a in dandiset.get_assets_with_path_prefix(prefix) if a.path.endswith(".nwb")}
        except NotFoundError as error:
            raise NWBContentError(f"{api_url}: {error}") from None
    wanted = asset or (target["path"] if target["kind"] == "asset_path" else None)
    if not nwb:
        raise NWBContentError(f"dandiset {target['dandiset']} {target['version']} on {api_url}: no NWB asset"
                              + (f" under {prefix!r}" if prefix else ""))
    chosen = wanted or next(iter(nwb))
    if chosen not in nwb:
        raise NWBContentError(f"dandiset {target['dandiset']} {target['version']} on {api_url}: no NWB asset "
                              f"{chosen!r}; NWB assets: {list(nwb)[:20]}")
    content = nwb[chosen].get_content_url(follow_redirects=1, strip_query=True)
    return chosen, content, [p for p in nwb if p != chosen]
