"""Per-presentation responses of every unit (spike counts in a window after onset) or imaging ROI
(mean ΔF/F in that window), labelled by stimulus, repeat, region, unit and session; several files
merged along ``neuroid``; unit filters with counts kept and dropped; split-half reliability.

Three adapters, chosen by ``responses.adapter`` in config, say where presentations and images are:

- ``templates``: an intervals table (or an IndexSeries) whose stimulus column indexes or names the
  images of a ``stimulus_template`` container (Allen Brain Observatory convention);
- ``table_folder``: any intervals table whose stimulus column holds an id or file name, with the
  images in a folder (``stimuli: {path, pattern}``), e.g. DANDI:000207's ``frameName``;
- ``ophys``: presentations as in either of the above; responses are ΔF/F of the ROIs of each
  imaging plane (its location is the region) instead of spikes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from tqdm import tqdm

from neurofit.neural.filters import RowFilterError, parse_row_filter
from neurofit.neural.nwb import (
    NWBContentError,
    open_nwb,
    read_folder_images,
    read_index_series,
    read_intervals,
    read_ophys,
    read_templates,
    read_units,
    stack_images,
)
from neurofit.neural.regions import parse_location, rename_region
from neurofit.neural.reliability import RepeatsError, split_half_reliability
from neurofit.paths import recorded_path

ADAPTERS = ("templates", "table_folder", "ophys")
# A spike within this many seconds of a window edge counts as on it: edges are onset + offset in
# floating point, so a spike stored at exactly ``onset + 0.170`` may differ from the edge by an ulp.
EDGE_TOLERANCE_S = 1e-9


# Unit filters on by default (``responses.units`` overrides each; null turns one off): a unit must fire
# at least this often in the response window (spiking data only) and have a positive split-half
# reliability, so silent units and units without measurable stimulus-driven variance (reliability
# undefined or <= 0, hence no noise ceiling) are dropped, counted per region, not scored.
DEFAULT_UNIT_FILTERS: dict[str, float] = {"min_rate_hz": 0.1, "min_reliability": 0.0}


class ResponseConfigError(ValueError):
    """The ``responses:`` block of a dataset is inconsistent."""


@dataclass
class ResponseSpec:
    """How a dataset's stimuli and responses are recorded (the ``responses:`` block in config)."""

    adapter: str = "templates"
    table: str = "natural_scenes_presentations"
    stimulus_column: str = "image_index"
    query: str | None = None
    exclude: list[Any] = field(default_factory=list)
    templates: str | None = None
    index_series: str | None = None
    stimuli: dict[str, str] | None = None
    resize: str | list[int] = "error"
    window_ms: tuple[float, float] = (70.0, 170.0)
    bin_ms: float | None = None
    location_key: str = "brain_region"
    region_map: dict[str, str] = field(default_factory=dict)
    regions: list[str] | None = None
    units: dict[str, Any] = field(default_factory=dict)
    unsorted_spike_times: str = "error"
    ophys_series: str | None = None
    reliability: dict[str, int] = field(default_factory=dict)
    defaulted_filters: tuple[str, ...] = ()  # unit filters set by DEFAULT_UNIT_FILTERS, not by config

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ResponseSpec:
        entry = dict(entry)
        if "window_ms" in entry:
            entry["window_ms"] = tuple(entry["window_ms"])
        defaults = dict(DEFAULT_UNIT_FILTERS)
        if entry.get("adapter") == "ophys":  # a firing rate does not apply to ΔF/F
            defaults.pop("min_rate_hz")
        configured = entry.get("units") or {}
        entry["units"] = {**defaults, **configured}
        entry["defaulted_filters"] = tuple(name for name in defaults if name not in configured)
        spec = cls(**entry)
        spec.check()
        return spec

    def check(self) -> None:
        start, stop = self.window_ms
        if self.adapter not in ADAPTERS:
            raise ResponseConfigError(f"responses.adapter: {self.adapter!r} is not one of {list(ADAPTERS)}")
        if not stop > start:
            raise ResponseConfigError(f"responses.window_ms: stop {stop} must be after start {start}")
        if self.bin_ms is not None:
            n = (stop - start) / self.bin_ms
            if self.bin_ms <= 0 or abs(n - round(n)) > 1e-9:
                raise ResponseConfigError(f"responses.bin_ms: {self.bin_ms} must divide the window "
                                          f"{list(self.window_ms)} into whole bins")
        if self.adapter == "table_folder" and not self.stimuli:
            raise ResponseConfigError("responses.stimuli: adapter table_folder needs stimuli: {path, pattern}")
        if self.adapter == "ophys" and self.units.get("min_rate_hz") is not None:
            raise ResponseConfigError("responses.units.min_rate_hz: a firing-rate filter does not apply to ΔF/F "
                                      "(adapter ophys)")
        if self.query is not None:
            try:
                parse_row_filter(self.query, "responses.query")
            except RowFilterError as error:
                raise ResponseConfigError(str(error)) from error
        if self.resize != "error" and not (isinstance(self.resize, list | tuple) and len(self.resize) == 2):
            raise ResponseConfigError(f"responses.resize: {self.resize!r} is neither 'error' nor [height, width]")

    def bin_edges_ms(self) -> np.ndarray:
        start, stop = self.window_ms
        if self.bin_ms is None:
            return np.array([start, stop], dtype=np.float64)
        n = int(round((stop - start) / self.bin_ms))
        edges = start + np.arange(n + 1, dtype=np.float64) * self.bin_ms
        edges[-1] = stop  # the last edge is exactly the window's stop, so bins sum to the window
        return edges


@dataclass
class ResponseSet:
    """What the responses stage writes: responses ``(presentation, neuroid)``, the same in time
    bins ``(presentation, neuroid, time_bin)``, stimuli ``(stimulus, y, x[, channel])`` and a
    summary of what was read and filtered."""

    responses: xr.DataArray
    binned: xr.DataArray
    stimuli: xr.DataArray
    summary: dict[str, Any]


@dataclass
class Session:
    """One file's presentations, neuroids and images before merging."""

    name: str
    path: str
    stimulus_ids: np.ndarray
    values: np.ndarray  # (presentation, neuroid)
    binned: np.ndarray  # (presentation, neuroid, time_bin)
    neuroids: pd.DataFrame
    images: dict[str, np.ndarray]
    info: dict[str, Any]


# -- counting --------------------------------------------------------------------------------
def window_counts(spike_times: list[np.ndarray], onsets: np.ndarray, edges_s: np.ndarray) -> np.ndarray:
    """Spike counts in half-open bins ``[onset + edges[k], onset + edges[k+1])`` (seconds):
    ``(onset, unit, bin)``."""
    bounds = onsets[:, None] + edges_s[None, :] - EDGE_TOLERANCE_S  # (onset, edge)
    counts = np.empty((len(onsets), len(spike_times), len(edges_s) - 1), dtype=np.int32)
    for j, times in enumerate(spike_times):
        counts[:, j, :] = np.diff(np.searchsorted(times, bounds, side="left"), axis=1)
    return counts


def spike_counts(spike_times: list[np.ndarray], onsets: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Counts in the half-open windows ``[onset + start, onset + stop)`` (seconds): (onset, unit)."""
    return window_counts(spike_times, onsets, np.array([start, stop]))[:, :, 0]


def window_means(times: np.ndarray, data: np.ndarray, onsets: np.ndarray, edges_s: np.ndarray,
                 where: str) -> np.ndarray:
    """Mean of samples (time, roi) whose times fall in ``[onset + edges[k], onset + edges[k+1])``:
    ``(onset, roi, bin)``; a bin without samples is NaN, a whole window without samples an error."""
    bounds = np.searchsorted(times, onsets[:, None] + edges_s[None, :] - EDGE_TOLERANCE_S, side="left")
    empty = bounds[:, -1] == bounds[:, 0]
    if empty.any():
        raise NWBContentError(f"{where}: no samples in the response window after onset(s) "
                              f"{onsets[empty][:3].tolist()} (responses.window_ms)")
    cumulative = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(data, axis=0)])
    sums = cumulative[bounds[:, 1:]] - cumulative[bounds[:, :-1]]  # (onset, bin, roi)
    n = (bounds[:, 1:] - bounds[:, :-1])[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    return means.transpose(0, 2, 1)


def repeat_index(stimulus_ids: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for successive presentations of the same stimulus."""
    repeats = np.empty(len(stimulus_ids), dtype=np.int32)
    seen: dict[Any, int] = {}
    for i, sid in enumerate(stimulus_ids):
        repeats[i] = seen.get(sid, 0)
        seen[sid] = repeats[i] + 1
    return repeats


# -- presentations and images ----------------------------------------------------------------
def _id_text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _presentations(nwbfile: Any, path: str, spec: ResponseSpec) -> tuple[np.ndarray, np.ndarray,
                                                                          dict[str, np.ndarray], dict[str, Any]]:
    """(onsets, stimulus ids, {id: image}, info) for the configured table/series and image source."""
    if spec.index_series:
        onsets, values, names, images = read_index_series(nwbfile, path, spec.index_series)
        info = {"index_series": spec.index_series, "rows": len(onsets)}
        keep = ~np.isin(values, spec.exclude) if spec.exclude else np.ones(len(values), dtype=bool)
        return _by_template_index(onsets[keep], values[keep], names, images, path, spec.index_series, info)

    table = read_intervals(nwbfile, path, spec.table)
    info = {"table": spec.table, "rows": len(table)}
    if spec.stimulus_column not in table.columns:
        raise NWBContentError(f"{path}: intervals table {spec.table!r} has no column {spec.stimulus_column!r} "
                              f"(responses.stimulus_column); columns: {list(table.columns)}")
    if spec.query:  # a parsed filter, never pandas query: configs are shared and must not run code
        try:
            table = table[parse_row_filter(spec.query, "responses.query").apply(table, f"{path} table {spec.table!r}")]
        except RowFilterError as error:
            raise NWBContentError(str(error)) from error
    if spec.exclude:
        table = table[~table[spec.stimulus_column].isin(spec.exclude)]
    info["rows_used"] = len(table)
    if len(table) == 0:
        raise NWBContentError(f"{path}: no rows of table {spec.table!r} left after responses.query/exclude")
    onsets = table["start_time"].to_numpy(dtype=np.float64)
    if np.isnan(onsets).any():
        raise NWBContentError(f"{path}: intervals table {spec.table!r} has NaN start_time values")
    values = table[spec.stimulus_column].to_numpy()
    if spec.stimuli:  # images from a folder, named by the stimulus column
        ids = np.array([_id_text(v) for v in values], dtype=object)
        images = read_folder_images(list(dict.fromkeys(ids)), spec.stimuli["path"],
                                    spec.stimuli.get("pattern", "{id}"), path)
        return onsets, ids, images, info
    names, arrays = read_templates(nwbfile, path, spec.templates)
    return _by_template_index(onsets, values, names, arrays, path, f"{spec.table}/{spec.stimulus_column}", info)


def _by_template_index(onsets: np.ndarray, values: np.ndarray, names: list[str], arrays: list[np.ndarray],
                       path: str, key: str, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray,
                                                                            dict[str, np.ndarray], dict[str, Any]]:
    """Numeric values index the templates in order; strings name them."""
    if values.dtype.kind in "iuf":
        index = values.astype(np.float64)
        bad = (index < 0) | (index >= len(names)) | (index != np.round(index))
        if bad.any():
            raise NWBContentError(f"{path}: {key} values {sorted(set(values[bad].tolist()))[:5]} are not indices "
                                  f"into the {len(names)} stimulus templates (responses.exclude skips values)")
        ids = np.asarray(names, dtype=object)[index.astype(np.int64)]
    else:
        ids = np.array([str(v) for v in values], dtype=object)
        missing = sorted(set(ids) - set(names))
        if missing:
            raise NWBContentError(f"{path}: {len(missing)} stimulus ids of {key} are absent from the stimulus "
                                  f"templates, e.g. {missing[:5]}")
    by_name = dict(zip(names, arrays, strict=True))
    return onsets, ids, {sid: by_name[sid] for sid in dict.fromkeys(ids)}, info


# -- one file --------------------------------------------------------------------------------
def read_session(path: str | Path, spec: ResponseSpec, name: str | None = None) -> Session:
    """One NWB file -> its presentations' responses for all of its units (or ROIs)."""
    path = str(path)
    edges_s = spec.bin_edges_ms() / 1000.0
    with open_nwb(path) as nwbfile:
        session = name or str(Path(path).stem)
        onsets, ids, images, info = _presentations(nwbfile, path, spec)
        if spec.adapter == "ophys":
            planes = read_ophys(nwbfile, path, spec.ophys_series)
            binned = np.concatenate([window_means(p.times, p.data, onsets, edges_s, f"{path}: {p.series}")
                                     for p in planes], axis=1)
            values = np.concatenate([window_means(p.times, p.data, onsets, edges_s[[0, -1]], f"{path}: {p.series}")
                                     for p in planes], axis=1)[:, :, 0]
            neuroids = pd.DataFrame({
                "unit_id": np.concatenate([p.roi_id for p in planes]),
                "location": np.concatenate([[p.location] * len(p.roi_id) for p in planes]),
                "plane": np.concatenate([[p.plane] * len(p.roi_id) for p in planes]),
            })
            info["planes"] = {p.series: {"plane": p.plane, "location": p.location, "rois": len(p.roi_id)}
                              for p in planes}
        else:
            units = read_units(nwbfile, path, spec.unsorted_spike_times)
            binned = window_counts(units.spike_times, onsets, edges_s)
            values = window_counts(units.spike_times, onsets, edges_s[[0, -1]])[:, :, 0]
            neuroids = pd.DataFrame({"unit_id": units.unit_id, "location": units.location,
                                     **{f"column:{k}": v for k, v in units.columns.items()}})
            info["units"] = len(units.unit_id)
            info["unsorted_units_sorted"] = units.n_unsorted
    neuroids["region"] = [rename_region(parse_location(loc, spec.location_key), spec.region_map)
                          for loc in neuroids["location"]]
    neuroids["session"] = session
    info.update(path=path, session=session, presentations=len(onsets))
    return Session(name=session, path=path, stimulus_ids=ids, values=values, binned=binned, neuroids=neuroids,
                   images=images, info=info)


# -- several files ---------------------------------------------------------------------------
def merge_sessions(sessions: list[Session]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                     pd.DataFrame]:
    """Presentations matched by (stimulus id, repeat) across sessions (those all of them share, in
    the first session's order); neuroids concatenated. Returns (ids, repeats, values, binned, neuroids)."""
    keyed = []
    for s in sessions:
        repeats = repeat_index(s.stimulus_ids)
        keyed.append({(sid, int(r)): i for i, (sid, r) in enumerate(zip(s.stimulus_ids, repeats, strict=True))})
    common = set(keyed[0]).intersection(*keyed[1:])
    if not common:
        raise NWBContentError(f"files {[s.path for s in sessions]} share no stimuli, so their units cannot be "
                              f"merged along neuroid")
    order = [key for key in keyed[0] if key in common]
    for s, keys in zip(sessions, keyed, strict=True):
        s.info["presentations_used"] = len(order)
        s.info["presentations_dropped_unshared"] = len(keys) - len(order)
    rows = [[keys[key] for key in order] for keys in keyed]
    values = np.concatenate([s.values[r] for s, r in zip(sessions, rows, strict=True)], axis=1)
    binned = np.concatenate([s.binned[r] for s, r in zip(sessions, rows, strict=True)], axis=1)
    neuroids = pd.concat([s.neuroids for s in sessions], ignore_index=True)
    ids = np.array([k[0] for k in order], dtype=object)
    return ids, np.array([k[1] for k in order], dtype=np.int32), values, binned, neuroids


def _session_names(paths: list[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    return [stem if stems.count(stem) == 1 else f"{stem}-{i}" for i, stem in enumerate(stems)]


# -- filters ---------------------------------------------------------------------------------
class _FilterLog:
    """Counts kept and dropped by each filter in turn (among the units earlier filters kept), in
    total and per region."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def apply(self, name: str, setting: Any, passes: np.ndarray, regions: np.ndarray, keep: np.ndarray) -> np.ndarray:
        kept, dropped = keep & passes, keep & ~passes
        by_region = {str(r): {"kept": int((kept & (regions == r)).sum()),
                              "dropped": int((dropped & (regions == r)).sum())} for r in dict.fromkeys(regions[keep])}
        self.records.append({"filter": name, "setting": setting, "kept": int(kept.sum()),
                             "dropped": int(dropped.sum()), "by_region": by_region})
        return kept


def _filter_units(neuroids: pd.DataFrame, values: np.ndarray, reliability: np.ndarray | None, spec: ResponseSpec,
                  files: list[str], log: _FilterLog) -> np.ndarray:
    regions = neuroids["region"].to_numpy(dtype=object)
    keep = np.ones(len(neuroids), dtype=bool)
    if spec.regions:
        keep = log.apply("region", list(spec.regions), np.isin(regions, spec.regions), regions, keep)
    quality = spec.units.get("quality")
    if quality:
        column = quality["column"]
        if f"column:{column}" not in neuroids:
            have = [c.split(":", 1)[1] for c in neuroids if c.startswith("column:")]
            raise NWBContentError(f"{files}: units have no column {column!r} (responses.units.quality.column); "
                                  f"unit columns: {have}")
        values_q = neuroids[f"column:{column}"].astype(str).to_numpy()
        keep = log.apply("quality", quality, np.isin(values_q, [str(v) for v in quality["keep"]]), regions, keep)
    min_rate = spec.units.get("min_rate_hz")
    if min_rate is not None:
        rate = values.mean(axis=0) / ((spec.window_ms[1] - spec.window_ms[0]) / 1000.0)
        keep = log.apply("min_rate_hz", min_rate, rate >= min_rate, regions, keep)
    min_reliability = spec.units.get("min_reliability")
    if min_reliability is not None and reliability is not None:
        keep = log.apply("min_reliability", min_reliability, np.nan_to_num(reliability, nan=-np.inf)
                         >= min_reliability, regions, keep)
    for region in spec.regions or []:
        if not (keep & (regions == region)).any():
            raise NWBContentError(
                f"{files}: region {region!r} (datasets.*.regions) has no units after filters "
                f"{[(r['filter'], r['by_region'].get(region, {'kept': 0})['kept']) for r in log.records]}; "
                f"regions in the file(s): {sorted(set(regions))} (responses.region_map renames them)")
    return keep


# -- the stage -------------------------------------------------------------------------------
def build_responses(paths: list[str | Path], spec: ResponseSpec, ceiling: bool = True) -> ResponseSet:
    """NWB files -> responses merged along ``neuroid``, filtered, with per-neuroid reliability.

    ``ceiling``: the pipeline computes noise ceilings from repeats, so fewer than 2 repeats is then
    an error here (naming the files), not later."""
    if not paths:
        raise NWBContentError("no NWB files to read responses from (the manifest lists no assets)")
    paths = [str(p) for p in paths]
    named = zip(paths, _session_names(paths), strict=True)
    sessions = [read_session(p, spec, name)
                for p, name in tqdm(named, total=len(paths), desc="NWB files", disable=len(paths) < 2)]
    ids, repeats, values, binned, neuroids = merge_sessions(sessions)

    reliability = None
    if ceiling or spec.units.get("min_reliability") is not None:
        settings = {"n_splits": 10, "seed": 1, **spec.reliability}
        try:
            reliability = split_half_reliability(values, ids, settings["n_splits"], settings["seed"])
        except RepeatsError as error:
            # Without a ceiling, the default reliability filter gives way to data without repeats;
            # a configured one does not.
            if ceiling or "min_reliability" not in spec.defaulted_filters:
                source = spec.index_series or f"{spec.table}/{spec.stimulus_column}"
                raise NWBContentError(f"{paths}: a noise ceiling needs stimuli shown at least twice ({source}): "
                                      f"{error}") from error
    log = _FilterLog()
    keep = _filter_units(neuroids, values, reliability, spec, paths, log)
    neuroids = neuroids[keep].reset_index(drop=True)
    values, binned = values[:, keep], binned[:, keep]
    if reliability is not None:
        reliability = reliability[keep]

    name = "dff" if spec.adapter == "ophys" else "spike_count"
    neuroid_coords = {
        "region": ("neuroid", neuroids["region"].to_numpy(dtype=str)),
        "unit_id": ("neuroid", neuroids["unit_id"].to_numpy()),
        "session": ("neuroid", neuroids["session"].to_numpy(dtype=str)),
        "location": ("neuroid", neuroids["location"].to_numpy(dtype=str)),
    }
    if "plane" in neuroids:  # ROI ids repeat across imaging planes
        neuroid_coords["plane"] = ("neuroid", neuroids["plane"].to_numpy(dtype=str))
    if reliability is not None:
        neuroid_coords["reliability"] = ("neuroid", reliability)
    attrs = {"adapter": spec.adapter, "window_ms": list(spec.window_ms),
             "files": json.dumps([recorded_path(p) for p in paths]),
             "source": spec.index_series or spec.table, "stimulus_column": spec.stimulus_column}
    presentation_coords = {"stimulus_id": ("presentation", ids.astype(str)), "repeat": ("presentation", repeats)}
    responses = xr.DataArray(values, dims=("presentation", "neuroid"), coords={**presentation_coords,
                             **neuroid_coords}, name=name, attrs=attrs)
    edges = spec.bin_edges_ms()
    binned_da = xr.DataArray(binned, dims=("presentation", "neuroid", "time_bin"),
                             coords={**presentation_coords, **neuroid_coords,
                                     "bin_start_ms": ("time_bin", edges[:-1]), "bin_stop_ms": ("time_bin", edges[1:])},
                             name=f"binned_{name}", attrs=attrs)

    used = sorted(set(ids.tolist()))
    stimuli = _stimulus_stack(used, [s.images for s in sessions], spec, paths)
    per_stimulus = np.unique(ids, return_counts=True)[1]
    summary = {
        "adapter": spec.adapter, "window_ms": list(spec.window_ms), "bin_ms": spec.bin_ms,
        "files": [s.info for s in sessions],
        "presentations": len(ids), "stimuli": len(used),
        "repeats_per_stimulus": {"min": int(per_stimulus.min()), "max": int(per_stimulus.max())},
        "filters": log.records,
        "neuroids_per_region": {str(k): int(v) for k, v in neuroids["region"].value_counts().sort_index().items()},
        "reliability_median_per_region": (
            {str(r): _median_not_nan(reliability[neuroids["region"].to_numpy() == r])
             for r in sorted(set(neuroids["region"]))} if reliability is not None else None),
    }
    return ResponseSet(responses=responses, binned=binned_da, stimuli=stimuli, summary=summary)


def _median_not_nan(values: np.ndarray) -> float:
    """``np.nanmedian(values)`` without its all-NaN warning: NaN where every value is NaN (a region whose units
    have no reliability, in a summary)."""
    kept = values[~np.isnan(values)]
    return float(np.median(kept)) if len(kept) else float("nan")


def _stimulus_stack(used: list[str], images: list[dict[str, np.ndarray]], spec: ResponseSpec,
                    paths: list[str]) -> xr.DataArray:
    """The images of the stimulus ids ``used`` (each from the first file that has it), stacked."""
    first: dict[str, np.ndarray] = {}
    for by_id in images:
        for sid in used:
            first.setdefault(sid, by_id.get(sid))
    stack = stack_images({sid: first[sid] for sid in used}, spec.resize, f"{paths}")
    return xr.DataArray(stack, dims=("stimulus", "y", "x") if stack.ndim == 3 else ("stimulus", "y", "x", "channel"),
                        coords={"stimulus_id": ("stimulus", np.asarray(used, dtype=str))}, name="stimuli")


def build_stimuli(paths: list[str | Path], spec: ResponseSpec) -> xr.DataArray:
    """The stimulus images of :func:`build_responses` (the same array), read without the units:
    the ids presented in every file (matched by id and repeat, as the responses are), sorted."""
    if not paths:
        raise NWBContentError("no NWB files to read stimuli from (the manifest lists no assets)")
    paths = [str(p) for p in paths]
    shown, images = [], []
    for path in tqdm(paths, desc="NWB files", disable=len(paths) < 2):
        with open_nwb(path) as nwbfile:
            _, ids, by_id, _ = _presentations(nwbfile, path, spec)
        shown.append(set(zip(ids.tolist(), repeat_index(ids).tolist(), strict=True)))
        images.append(by_id)
    common = set.intersection(*shown)
    if not common:
        raise NWBContentError(f"files {paths} share no stimuli, so their units cannot be merged along neuroid")
    return _stimulus_stack(sorted({sid for sid, _ in common}), images, spec, paths)


def manifest_filter_entries(summary: dict[str, Any]) -> dict[str, Any]:
    """What each unit filter of a responses summary dropped, in the data manifest's terms:
    ``units: {region: {kept, dropped, <filter>: dropped}}`` and ``unit_filters: [{name, setting,
    kept, dropped, by_region}]``."""
    units: dict[str, dict[str, int]] = {}
    for record in summary.get("filters", []):
        for region, counts in record["by_region"].items():
            entry = units.setdefault(region, {"kept": 0, "dropped": 0})
            entry["kept"] = counts["kept"]  # the last filter's kept count is the final one
            entry["dropped"] += counts["dropped"]
            if counts["dropped"]:
                entry[f"dropped by {record['filter']}"] = counts["dropped"]
    filters = [{"name": r["filter"], "setting": r["setting"], "kept": r["kept"], "dropped": r["dropped"],
                "by_region": r["by_region"]} for r in summary.get("filters", [])]
    return {"units": units, "unit_filters": filters}


def responses_from_nwb(path: str | Path, spec: ResponseSpec, ceiling: bool = True) -> tuple[xr.DataArray,
                                                                                           xr.DataArray]:
    """One file: (responses ``(presentation, neuroid)``, stimuli ``(stimulus, y, x[, channel])``)."""
    result = build_responses([path], spec, ceiling)
    return result.responses, result.stimuli
