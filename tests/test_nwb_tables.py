"""Tables built from whole arrays write the same file as pynwb's row-by-row API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile

from neurofit.nwb_tables import intervals_table, units_table
from neurofit.simulate import _fix_object_ids

REGIONS = ["V1", "V1", "IT", "V4"]
DESCRIPTIONS = {"image_index": "which image", "category": "its category"}


def _session(trains: list[np.ndarray], columns: dict[str, np.ndarray], by_rows: bool) -> NWBFile:
    from pynwb.epoch import TimeIntervals

    start = datetime(2026, 1, 1, tzinfo=UTC)
    nwbfile = NWBFile(session_description="test", identifier="tables", session_start_time=start,
                      file_create_date=[start])
    device = nwbfile.create_device(name="probe")
    groups = {r: nwbfile.create_electrode_group(name=r, description=r, location=r, device=device)
              for r in dict.fromkeys(REGIONS)}
    for region in REGIONS:
        nwbfile.add_electrode(location=region, group=groups[region], x=0.0, y=0.0, z=0.0, imp=float("nan"),
                              filtering="none")
    if by_rows:
        for index, train in enumerate(trains):
            nwbfile.add_unit(spike_times=train, electrodes=[index])
        table = TimeIntervals(name="presentations", description="rows")
        for name, description in DESCRIPTIONS.items():
            table.add_column(name, description)
        for row in range(len(columns["start_time"])):
            table.add_row(start_time=float(columns["start_time"][row]), stop_time=float(columns["stop_time"][row]),
                          image_index=int(columns["image_index"][row]), category=str(columns["category"][row]))
    else:
        nwbfile.units = units_table(trains, nwbfile.electrodes)
        table = intervals_table("presentations", "rows", columns, DESCRIPTIONS)
    nwbfile.add_time_intervals(table)
    _fix_object_ids(nwbfile, 0)
    return nwbfile


def _write(nwbfile: NWBFile, path: Path) -> bytes:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path.read_bytes()


def test_array_tables_write_the_bytes_of_row_by_row_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    trains = [np.sort(rng.uniform(0, 100, n)) for n in (300, 0, 1, 70000)]  # an empty train; > 65535 spikes
    onsets = 1.0 + np.arange(40) * 0.5
    columns = {"start_time": onsets, "stop_time": onsets + 0.25, "image_index": rng.integers(0, 10, 40),
               "category": np.array(["face", "car", "chair", "dog"])[rng.integers(0, 4, 40)]}
    rows = _write(_session(trains, columns, by_rows=True), tmp_path / "rows.nwb")
    arrays = _write(_session(trains, columns, by_rows=False), tmp_path / "arrays.nwb")
    assert arrays == rows
    with NWBHDF5IO(str(tmp_path / "arrays.nwb"), "r") as io:
        nwb = io.read()
        for index, train in enumerate(trains):
            read = nwb.units["spike_times"][index]
            assert read.dtype == np.float64 and read.tobytes() == train.tobytes()
            assert nwb.units["electrodes"][index]["location"].tolist() == [REGIONS[index]]
        table = nwb.intervals["presentations"].to_dataframe()
        assert table["category"].tolist() == columns["category"].tolist()
        np.testing.assert_array_equal(table["image_index"], columns["image_index"])


def test_columns_of_unequal_length_are_refused() -> None:
    with pytest.raises(ValueError, match="unequal lengths"):
        intervals_table("presentations", "rows", {"start_time": [0.0, 1.0], "stop_time": [0.5]})
