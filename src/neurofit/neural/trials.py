"""Trial-aligned, time-resolved responses from an NWB trials table (DANDI:000006-style task data).

Each trial's spikes are counted in bins of ``bin_ms`` over ``window_ms`` around an alignment event (a column of
the trials table holding event times, absolute or relative to the trial's ``start_time`` as in DANDI:000006).
Trials are labelled by a condition made from trial columns (``type``, ``response``) and kept or dropped by a safe
row filter (``is_good == 1``). The result is a labelled array ``(trial, time, neuroid)`` of firing rates in Hz,
with a ``condition`` coord on ``trial`` and the other events' times (relative to the alignment) as trial coords.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.neural.filters import parse_row_filter
from neurofit.neural.nwb import NWBContentError, open_nwb, read_intervals, read_units
from neurofit.neural.regions import parse_location, rename_region
from neurofit.neural.responses import window_counts
from neurofit.paths import recorded_path

CONDITION_SEPARATOR = " | "


@dataclass(frozen=True)
class TrialSpec:
    """How trials are aligned, binned, labelled and filtered (the ``responses:`` block of a trial dataset)."""

    align: str
    window_ms: tuple[float, float] = (-3000.0, 1500.0)
    bin_ms: float = 50.0
    conditions: tuple[str, ...] = ("type",)
    events: tuple[str, ...] = ()
    times: str = "relative"
    table: str = "trials"
    start_column: str = "start_time"
    filter: str | None = None
    regions: tuple[str, ...] = ()
    region_map: dict[str, str] = field(default_factory=dict)
    location_key: str = "brain_region"
    unsorted_spike_times: str = "error"
    min_trials: int = 4
    smooth_ms: float = 0.0

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> TrialSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"responses: unknown key(s) {sorted(unknown)} for a trial dataset; known: {sorted(known)}")
        values = dict(settings)
        for key in ("window_ms", "conditions", "events", "regions"):
            if key in values:
                values[key] = tuple(values[key])
        spec = cls(**values)
        if spec.times not in ("relative", "absolute"):
            raise ValueError(f"responses.times: {spec.times!r}; use 'relative' (to the trial's "
                             f"{spec.start_column}) or 'absolute'")
        if not spec.window_ms[0] < spec.window_ms[1]:
            raise ValueError(f"responses.window_ms: {list(spec.window_ms)} must be [start, stop] with start < stop")
        if spec.bin_ms <= 0 or (spec.window_ms[1] - spec.window_ms[0]) < spec.bin_ms:
            raise ValueError(f"responses.bin_ms: {spec.bin_ms} must be positive and fit in window_ms")
        return spec

    def bin_edges_s(self) -> np.ndarray:
        """Bin edges relative to the alignment event, in seconds (the window rounded down to whole bins)."""
        n = int(np.floor((self.window_ms[1] - self.window_ms[0]) / self.bin_ms + 1e-9))
        return (self.window_ms[0] + self.bin_ms * np.arange(n + 1)) / 1000.0


def _column(table: pd.DataFrame, name: str, key: str, path: str | Path) -> pd.Series:
    if name not in table.columns:
        raise NWBContentError(f"{path}: the trials table has no column {name!r} ({key}); columns: "
                              f"{sorted(table.columns)}")
    return table[name]


def select_trials(table: pd.DataFrame, spec: TrialSpec, path: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Trials kept by the filter with a finite alignment time, and how many each step dropped."""
    counts = {"trials": len(table)}
    if spec.filter:
        mask = parse_row_filter(spec.filter, key="responses.filter").apply(table, where=f"{path}: ")
        table = table[mask]
        counts["dropped_by_filter"] = int((~mask).sum())
    align = pd.to_numeric(_column(table, spec.align, "responses.align", path), errors="coerce")
    finite = np.isfinite(align.to_numpy(dtype=float))
    counts["dropped_no_event"] = int((~finite).sum())
    table = table[finite]
    for name in spec.conditions:
        _column(table, name, "responses.conditions", path)
    if table.empty:
        raise NWBContentError(f"{path}: no trials left after responses.filter {spec.filter!r} and the alignment "
                              f"event {spec.align!r}")
    counts["kept"] = len(table)
    return table, counts


def condition_labels(table: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """One label per trial: the condition columns' values joined (``'lick left | correct'``)."""
    return np.array([CONDITION_SEPARATOR.join(str(v) for v in row) for row in table[list(columns)].itertuples(
        index=False)], dtype=object)


def _event_times_s(table: pd.DataFrame, column: str, spec: TrialSpec, path: str | Path) -> np.ndarray:
    """Absolute times (s) of an event column: relative ones are added to the trial's start column."""
    values = pd.to_numeric(_column(table, column, "responses.align/events", path), errors="coerce").to_numpy(float)
    if spec.times == "relative":
        return values + _column(table, spec.start_column, "responses.start_column", path).to_numpy(float)
    return values


def read_trial_responses(source: str | Path, spec: TrialSpec, session: str | None = None
                         ) -> tuple[xr.DataArray, dict[str, Any]]:
    """Firing rates (Hz) ``(trial, time, neuroid)`` of one NWB file, and what was kept and dropped."""
    session = session or Path(str(source)).stem
    with open_nwb(source) as nwbfile:
        table = read_intervals(nwbfile, source, spec.table)
        units = read_units(nwbfile, source, spec.unsorted_spike_times)
    table, counts = select_trials(table, spec, source)
    align_s = _event_times_s(table, spec.align, spec, source)
    edges = spec.bin_edges_s()
    regions = np.array([rename_region(parse_location(loc, spec.location_key), spec.region_map)
                        for loc in units.location], dtype=object)
    keep = np.isin(regions, spec.regions) if spec.regions else np.ones(len(regions), bool)
    if not keep.any():
        raise NWBContentError(f"{source}: no units in regions {list(spec.regions)} (regions in the file: "
                              f"{sorted(set(regions))}; responses.region_map renames them)")
    # counted as the image responses are (half-open bins, the same edge tolerance): (trial, time, neuroid)
    spikes = window_counts([units.spike_times[i] for i in np.flatnonzero(keep)], align_s, edges)
    rates = spikes.transpose(0, 2, 1) / (spec.bin_ms / 1000.0)
    trial_coords: dict[str, Any] = {
        "trial_id": ("trial", np.asarray(table.index)),
        "condition": ("trial", condition_labels(table, spec.conditions).astype(str)),
        "trial_session": ("trial", np.full(len(table), session, dtype=object).astype(str)),
    }
    for name in spec.conditions:
        trial_coords[name] = ("trial", table[name].to_numpy().astype(str))
    for event in spec.events:
        trial_coords[f"event_{event}"] = ("trial", _event_times_s(table, event, spec, source) - align_s)
    responses = xr.DataArray(
        rates.astype(np.float32), dims=("trial", "time", "neuroid"),
        coords={**trial_coords, "time": ("time", (edges[:-1] + edges[1:]) / 2),
                "unit_id": ("neuroid", units.unit_id[keep]), "region": ("neuroid", regions[keep].astype(str)),
                "session": ("neuroid", np.full(int(keep.sum()), session, dtype=object).astype(str))},
        attrs={"align": spec.align, "bin_ms": spec.bin_ms, "units": "Hz", "time_units": "s from the alignment event"})
    summary = {"file": recorded_path(source), "session": session, **counts,
               "units_per_region": {r: int((regions[keep] == r).sum()) for r in sorted(set(regions[keep]))}}
    return responses, summary


def smooth(psth: xr.DataArray, sd_ms: float) -> xr.DataArray:
    """Gaussian smoothing along ``time`` (sd in ms; 0 = none); edges are renormalised, not zero-padded."""
    if sd_ms <= 0:
        return psth
    bin_s = float(np.median(np.diff(psth["time"].values)))
    sd = sd_ms / 1000.0 / bin_s
    half = int(np.ceil(3 * sd))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
    axis = psth.get_axis_num("time")

    def convolve(values: np.ndarray) -> np.ndarray:
        ones = np.ones(values.shape[axis])
        norm = np.convolve(ones, kernel, mode="same")
        out = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, values)
        shape = [1] * values.ndim
        shape[axis] = -1
        return out / norm.reshape(shape)

    return psth.copy(data=convolve(psth.values.astype(np.float64)).astype(psth.dtype))


def condition_psth(responses: xr.DataArray, sd_ms: float = 0.0) -> xr.DataArray:
    """Trial-averaged rates per condition ``(condition, time, neuroid)``, smoothed if ``sd_ms`` > 0."""
    mean = responses.groupby("condition").mean("trial")
    mean = mean.drop_vars([c for c in mean.coords if c not in ("condition", "time") and "neuroid" not in
                           mean[c].dims]).transpose("condition", "time", "neuroid")
    return smooth(mean.assign_coords(condition=mean["condition"].values.astype(str)), sd_ms)


def pool_sessions(per_session: list[xr.DataArray], min_trials: int = 1) -> tuple[list[xr.DataArray], list[str]]:
    """The conditions every session has (with at least ``min_trials`` trials each), per session restricted to them.

    Pseudo-populations: units recorded in different sessions are matched by condition, not by trial."""
    if not per_session:
        raise ValueError("no sessions to pool")
    common = None
    for responses in per_session:
        labels, counts = np.unique(responses["condition"].values, return_counts=True)
        enough = set(labels[counts >= min_trials])
        common = enough if common is None else common & enough
    conditions = sorted(common or [])
    if not conditions:
        raise NWBContentError(f"no condition has at least {min_trials} trials (responses.min_trials) in every "
                              f"session: {[sorted(set(r['condition'].values)) for r in per_session]}")
    kept = [r.isel(trial=np.isin(r["condition"].values, conditions)) for r in per_session]
    return kept, conditions


def pseudo_population_psth(per_session: list[xr.DataArray], sd_ms: float = 0.0, min_trials: int = 1) -> xr.DataArray:
    """Condition PSTHs of every session's units side by side along ``neuroid`` (shared conditions only)."""
    kept, conditions = pool_sessions(per_session, min_trials)
    psths = [condition_psth(r, sd_ms).sel(condition=conditions) for r in kept]
    return xr.concat(psths, dim="neuroid")


def split_halves(responses: xr.DataArray, n_splits: int = 10, seed: int = 0, sd_ms: float = 0.0) -> np.ndarray:
    """Each split's two half PSTHs ``(split, half, condition, time, neuroid)``: every condition's trials (conditions
    sorted, as :func:`condition_psth` orders them) halved at random, each half trial-averaged (and smoothed)."""
    rng = np.random.default_rng(seed)
    labels = responses["condition"].values
    conditions = sorted(set(labels))
    values = responses.transpose("trial", "time", "neuroid").values.astype(np.float64)
    out = np.empty((n_splits, 2, len(conditions), *values.shape[1:]))
    for split in range(n_splits):
        for c, condition in enumerate(conditions):
            idx = rng.permutation(np.flatnonzero(labels == condition))
            if len(idx) < 2:
                raise ValueError(f"condition {condition!r} has {len(idx)} trial(s); a split-half ceiling needs 2")
            half = len(idx) // 2
            for h, part in enumerate((idx[:half], idx[half:2 * half])):
                out[split, h, c] = _smooth_array(values[part].mean(0), responses, sd_ms)
    return out


def reliability_of_halves(halves: np.ndarray) -> np.ndarray:
    """Each neuroid's split-half reliability ``(split, neuroid)`` from :func:`split_halves`: the halves' PSTHs
    correlated over condition x time, Spearman-Brown corrected."""
    from neurofit.encoding.ceiling import spearman_brown
    from neurofit.encoding.ridge import pearson_columns

    flat = halves.reshape(*halves.shape[:2], -1, halves.shape[-1])
    return np.array([spearman_brown(pearson_columns(a, b)) for a, b in flat])


def split_half_trials(responses: xr.DataArray, n_splits: int = 10, seed: int = 0, sd_ms: float = 0.0) -> np.ndarray:
    """Split-half reliability of each neuroid's condition PSTH ``(split, neuroid)``, Spearman-Brown corrected.

    Each split halves every condition's trials at random; the two halves' PSTHs are correlated over
    condition x time per neuroid (the trial-level analogue of the repeat ceiling)."""
    return reliability_of_halves(split_halves(responses, n_splits, seed, sd_ms))


def _smooth_array(psth: np.ndarray, responses: xr.DataArray, sd_ms: float) -> np.ndarray:
    if sd_ms <= 0:
        return psth
    da = xr.DataArray(psth, dims=("time", "neuroid"), coords={"time": responses["time"].values})
    return smooth(da, sd_ms).values


def epoch_times(responses: xr.DataArray) -> dict[str, float]:
    """Median time (s, relative to the alignment event) of each recorded event over trials."""
    return {name[len("event_"):]: float(np.nanmedian(responses[name].values))
            for name in responses.coords if name.startswith("event_")}


def build_trial_dataset(per_session: list[xr.DataArray], spec: TrialSpec, n_splits: int = 10, seed: int = 0
                        ) -> tuple[xr.Dataset, dict[str, Any]]:
    """The pooled PSTHs ``(condition, time, neuroid)`` and each neuroid's split-half ceiling ``(split, neuroid)``.

    Conditions are those every session has at least ``spec.min_trials`` trials of; the epochs (median event times
    relative to the alignment event, over every kept trial) say when the task's periods start."""
    kept, conditions = pool_sessions(per_session, spec.min_trials)
    psth = xr.concat([condition_psth(r, spec.smooth_ms).sel(condition=conditions) for r in kept], dim="neuroid")
    # every session's halves on the shared conditions (pool_sessions kept only those), side by side as the PSTHs
    halves = np.concatenate([split_halves(r, n_splits, seed, spec.smooth_ms) for r in kept], axis=-1)
    missing = [r for r in spec.regions if r not in set(psth["region"].values)]
    if missing:
        raise NWBContentError(f"no units in region(s) {missing} in any session (regions found: "
                              f"{sorted(set(psth['region'].values))}; responses.region_map renames them)")
    epochs = {spec.align: 0.0, **{event: float(np.nanmedian(np.concatenate([r[f"event_{event}"].values for r in kept])))
                                  for event in spec.events}}
    dataset = xr.Dataset(
        {"psth": psth.astype(np.float32), "reliability": (("split", "neuroid"), reliability_of_halves(halves)),
         # the halves themselves: the fit jobs take each geometry metric's ceiling from them
         "psth_halves": (("split", "half", "condition", "time", "neuroid"), halves.astype(np.float32))},
        attrs={"epochs": json.dumps(epochs), "window_ms": list(spec.window_ms), "bin_ms": spec.bin_ms,
               "align": spec.align, "smooth_ms": spec.smooth_ms, "units": "Hz",
               "ceiling": f"split-half over trials per condition, {n_splits} splits, Spearman-Brown corrected"})
    summary = {"conditions": conditions, "epochs_s": epochs,
               "trials_per_condition": {str(r["trial_session"].values[0]): {c: int((r["condition"].values == c).sum())
                                                                            for c in conditions} for r in kept},
               "neuroids_per_region": {r: int((psth["region"].values == r).sum())
                                       for r in sorted(set(psth["region"].values))}}
    return dataset, summary
