"""Reading what the response adapters need from an NWB file: units with regions, an intervals
table, stimulus templates. Errors name the file and the missing key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurofit.neural.regions import decode, parse_location, rename_region


class NWBContentError(ValueError):
    """An NWB file lacks what the configuration asks for."""


@dataclass
class Units:
    """Spike trains with their unit ids and regions."""

    unit_id: np.ndarray
    region: np.ndarray
    spike_times: list[np.ndarray]


def read_units(nwbfile: Any, path: str | Path, region_map: dict[str, str] | None = None) -> Units:
    units = nwbfile.units
    if units is None or len(units) == 0:
        raise NWBContentError(f"{path}: the file has no units table (no spike-sorted units)")
    colnames = set(units.colnames)
    if "location" in colnames:
        raw = [units["location"][i] for i in range(len(units))]
    elif "electrodes" in colnames:
        raw = []
        for i in range(len(units)):
            electrodes = units["electrodes"][i]
            raw.append(electrodes["location"].iloc[0] if len(electrodes) else "unknown")
    else:
        raise NWBContentError(f"{path}: units have neither a 'location' nor an 'electrodes' column")
    regions = np.array([rename_region(parse_location(value), region_map) for value in raw], dtype=object)
    spikes = []
    for i in range(len(units)):
        times = np.asarray(units["spike_times"][i], dtype=np.float64)
        if np.isnan(times).any():
            raise NWBContentError(f"{path}: unit {units.id[i]} has NaN spike times")
        if np.any(np.diff(times) < 0):
            raise NWBContentError(f"{path}: unit {units.id[i]} has unsorted spike times")
        spikes.append(times)
    return Units(unit_id=np.asarray(units.id[:]), region=regions, spike_times=spikes)


def read_intervals(nwbfile: Any, path: str | Path, table: str) -> pd.DataFrame:
    tables = {}
    if nwbfile.intervals is not None:
        tables.update(nwbfile.intervals)
    if nwbfile.trials is not None:
        tables.setdefault("trials", nwbfile.trials)
    if table not in tables:
        raise NWBContentError(f"{path}: no intervals table {table!r}; tables in the file: {sorted(tables)}")
    frame = tables[table].to_dataframe(exclude={"timeseries"}) if hasattr(tables[table], "to_dataframe") else None
    return frame.map(decode) if frame is not None and frame.dtypes.eq(object).any() else frame


def read_templates(nwbfile: Any, path: str | Path, name: str | None) -> tuple[list[str], np.ndarray]:
    """Images of a ``stimulus_template`` Images container: (names in order, array (n, H, W[, C]))."""
    templates = dict(nwbfile.stimulus_template)
    if not templates:
        raise NWBContentError(f"{path}: no stimulus_template in the file (no stimulus images)")
    if name is None:
        if len(templates) > 1:
            raise NWBContentError(f"{path}: several stimulus templates {sorted(templates)}; name one in config")
        name = next(iter(templates))
    if name not in templates:
        raise NWBContentError(f"{path}: no stimulus template {name!r}; templates: {sorted(templates)}")
    container = templates[name]
    if hasattr(container, "images"):
        ordered = list(container.order_of_images) if getattr(container, "order_of_images", None) else None
        images = ordered or list(container.images.values())
        names = [img.name for img in images]
        arrays = [np.asarray(img.data) for img in images]
    else:  # an ImageSeries holding frames
        arrays = list(np.asarray(container.data))
        names = [f"{name}_{i:04d}" for i in range(len(arrays))]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise NWBContentError(f"{path}: stimulus template {name!r} holds images of different sizes {sorted(shapes)}")
    stack = np.stack(arrays).astype(np.float32)
    if stack.max() > 1.0:
        stack /= 255.0
    return names, stack
