"""Spike counts in a window after each stimulus onset, per unit, repeats kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit.neural.nwb import NWBContentError, read_intervals, read_templates, read_units


@dataclass
class ResponseSpec:
    """How a dataset's stimuli and responses are recorded (the ``responses:`` block in config)."""

    table: str = "natural_scenes_presentations"
    stimulus_column: str = "image_index"
    templates: str | None = None
    window_ms: tuple[float, float] = (70.0, 170.0)
    region_map: dict[str, str] = field(default_factory=dict)
    regions: list[str] | None = None

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> ResponseSpec:
        entry = dict(entry)
        if "window_ms" in entry:
            entry["window_ms"] = tuple(entry["window_ms"])
        return cls(**entry)


def spike_counts(spike_times: list[np.ndarray], onsets: np.ndarray, start: float, stop: float) -> np.ndarray:
    """Counts in the half-open windows ``[onset + start, onset + stop)`` (seconds): (onset, unit)."""
    counts = np.empty((len(onsets), len(spike_times)), dtype=np.int32)
    for j, times in enumerate(spike_times):
        lo = np.searchsorted(times, onsets + start, side="left")
        hi = np.searchsorted(times, onsets + stop, side="left")
        counts[:, j] = hi - lo
    return counts


def repeat_index(stimulus_ids: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... for successive presentations of the same stimulus."""
    repeats = np.empty(len(stimulus_ids), dtype=np.int32)
    seen: dict[Any, int] = {}
    for i, sid in enumerate(stimulus_ids):
        repeats[i] = seen.get(sid, 0)
        seen[sid] = repeats[i] + 1
    return repeats


def responses_from_nwb(path: str | Path, spec: ResponseSpec, file: Any = None) -> tuple[xr.DataArray, xr.DataArray]:
    """Adapter for a presentations table + ``stimulus_template`` Images (Allen convention).

    ``file``: the NWB file already open as an ``h5py.File`` (e.g. read over HTTP); ``path`` then only names it.
    Returns (responses ``(presentation, neuroid)``, stimuli ``(stimulus, y, x)``)."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(None if file is not None else str(path), "r", file=file, load_namespaces=True) as io:
        nwbfile = io.read()
        session = str(nwbfile.session_id or Path(path).stem)
        units = read_units(nwbfile, path, spec.region_map)
        table = read_intervals(nwbfile, path, spec.table)
        if spec.stimulus_column not in table.columns:
            raise NWBContentError(f"{path}: table {spec.table!r} has no column {spec.stimulus_column!r}; "
                                  f"columns: {list(table.columns)}")
        names, images = read_templates(nwbfile, path, spec.templates)

    index = table[spec.stimulus_column].to_numpy()
    if np.issubdtype(index.dtype, np.number):
        bad = (index < 0) | (index >= len(names))
        if bad.any():
            raise NWBContentError(f"{path}: {spec.stimulus_column} values {sorted(set(index[bad]))[:5]} are not "
                                  f"indices into the {len(names)} stimulus templates")
        stimulus_ids = np.asarray(names, dtype=object)[index.astype(int)]
    else:
        missing = sorted(set(index) - set(names))
        if missing:
            raise NWBContentError(f"{path}: stimulus ids {missing[:5]} are absent from the templates")
        stimulus_ids = index.astype(object)

    keep = np.ones(len(units.region), dtype=bool)
    if spec.regions:
        keep = np.isin(units.region, spec.regions)
        empty = [r for r in spec.regions if r not in set(units.region)]
        if empty:
            raise NWBContentError(f"{path}: no units in region(s) {empty}; regions in the file: "
                                  f"{sorted(set(units.region))}")
    onsets = table["start_time"].to_numpy(dtype=np.float64)
    start, stop = (w / 1000.0 for w in spec.window_ms)
    counts = spike_counts([t for t, k in zip(units.spike_times, keep, strict=True) if k], onsets, start, stop)
    responses = xr.DataArray(
        counts,
        dims=("presentation", "neuroid"),
        coords={
            "stimulus_id": ("presentation", stimulus_ids.astype(str)),
            "repeat": ("presentation", repeat_index(stimulus_ids)),
            "onset": ("presentation", onsets),
            "region": ("neuroid", units.region[keep].astype(str)),
            "unit_id": ("neuroid", units.unit_id[keep]),
            "session": ("neuroid", np.full(int(keep.sum()), session)),
        },
        name="spike_count",
        attrs={"window_ms": list(spec.window_ms), "table": spec.table, "file": str(path)},
    )
    used = sorted(set(stimulus_ids), key=str)
    by_name = {n: i for i, n in enumerate(names)}
    stimuli = xr.DataArray(
        images[[by_name[s] for s in used]],
        dims=("stimulus", "y", "x") if images.ndim == 3 else ("stimulus", "y", "x", "channel"),
        coords={"stimulus_id": ("stimulus", np.asarray(used, dtype=str))},
        name="stimuli",
    )
    return responses, stimuli


def average_repeats(responses: xr.DataArray) -> xr.DataArray:
    """Mean over repeats: ``(stimulus, neuroid)`` ordered by ``stimulus_id``."""
    mean = responses.astype(np.float64).groupby("stimulus_id").mean("presentation")
    mean = mean.sortby("stimulus_id")
    ids = mean["stimulus_id"].values.astype(str)
    return mean.rename({"stimulus_id": "stimulus"}).drop_vars("stimulus").assign_coords(
        stimulus_id=("stimulus", ids))
