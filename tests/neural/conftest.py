"""Small NWB files written with pynwb, with known content, for the responses stage's tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FILE_000207 = "dandi/000207/sub-4/sub-4_ses-4_ecephys+image.nwb"
FILE_000006 = "dandi/000006/sub-anm369963/sub-anm369963_ses-20170228.nwb"


def write_nwb(path: Path, *, units: list[dict[str, Any]] | None = None, unit_columns: dict[str, str] | None = None,
              tables: dict[str, dict[str, Any]] | None = None,
              templates: dict[str, dict[str, np.ndarray]] | None = None, index_series: dict[str, Any] | None = None,
              planes: list[dict[str, Any]] | None = None,
              session_id: str | None = None) -> Path:
    """``units``: [{spike_times, location, <unit column>: value}]; ``tables``: {name: {column: values}}
    with start_time (and optional stop_time), ``trials`` becomes the trials table; ``templates``:
    {container: {image name: array}}; ``index_series``: {name, onsets, indices, templates};
    ``planes``: [{name, location, data (time, roi), rate}] as DfOverF RoiResponseSeries."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.base import ImageReferences, Images
    from pynwb.epoch import TimeIntervals
    from pynwb.image import GrayscaleImage, IndexSeries, RGBImage
    from pynwb.ophys import DfOverF, ImageSegmentation, OpticalChannel

    nwbfile = NWBFile(session_description="neurofit test file", identifier=path.stem,
                      session_start_time=datetime(2026, 1, 1, tzinfo=UTC), session_id=session_id)
    device = nwbfile.create_device(name="probe")
    if units:
        group = nwbfile.create_electrode_group(name="shank", description="test", location="brain", device=device)
        for name, description in (unit_columns or {}).items():
            nwbfile.add_unit_column(name, description)
        for i, unit in enumerate(units):
            nwbfile.add_electrode(location=unit["location"], group=group, x=0.0, y=0.0, z=0.0,
                                  imp=float("nan"), filtering="none")
            extra = {k: v for k, v in unit.items() if k not in ("spike_times", "location")}
            nwbfile.add_unit(spike_times=np.asarray(unit["spike_times"], dtype=np.float64), electrodes=[i], **extra)
    containers = {}
    for container, images in (templates or {}).items():
        objects = [RGBImage(name=n, data=a) if a.ndim == 3 else GrayscaleImage(name=n, data=a)
                   for n, a in images.items()]
        containers[container] = Images(name=container, images=objects, description="test images",
                                       order_of_images=ImageReferences(name="order_of_images", data=objects))
        nwbfile.add_stimulus_template(containers[container])
    if index_series:
        nwbfile.add_stimulus(IndexSeries(name=index_series["name"], data=np.asarray(index_series["indices"]),
                                         unit="N/A", indexed_images=containers[index_series["templates"]],
                                         timestamps=np.asarray(index_series["onsets"], dtype=np.float64)))
    for name, columns in (tables or {}).items():
        starts = np.asarray(columns["start_time"], dtype=np.float64)
        stops = np.asarray(columns.get("stop_time", starts + 0.25), dtype=np.float64)
        others = {k: v for k, v in columns.items() if k not in ("start_time", "stop_time")}
        table = TimeIntervals(name=name, description="test table")
        for column in others:
            table.add_column(column, f"test column {column}")
        for row in range(len(starts)):
            table.add_row(start_time=float(starts[row]), stop_time=float(stops[row]),
                          **{k: v[row] for k, v in others.items()})
        if name == "trials":
            nwbfile.trials = table
        else:
            nwbfile.add_time_intervals(table)
    if planes:
        module = nwbfile.create_processing_module(name="ophys", description="test ophys")
        segmentation = ImageSegmentation()
        module.add(segmentation)
        dff = DfOverF()
        module.add(dff)
        channel = OpticalChannel(name="green", description="green", emission_lambda=520.0)
        for plane in planes:
            imaging = nwbfile.create_imaging_plane(name=plane["name"], optical_channel=channel, description="test",
                                                   device=device, excitation_lambda=920.0, imaging_rate=plane["rate"],
                                                   indicator="GCaMP6f", location=plane["location"])
            rois = segmentation.create_plane_segmentation(name=f"seg_{plane['name']}", description="test",
                                                          imaging_plane=imaging)
            n_rois = plane["data"].shape[1]
            for _ in range(n_rois):
                rois.add_roi(image_mask=np.ones((4, 4)))
            region = rois.create_roi_table_region(region=list(range(n_rois)), description="all")
            dff.create_roi_response_series(name=f"dff_{plane['name']}", data=plane["data"], rois=region, unit="1",
                                           rate=float(plane["rate"]), starting_time=0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture
def nwb_writer():
    return write_nwb


@pytest.fixture(scope="session")
def file_000207(shared_data: Path) -> Path:
    return shared_data / FILE_000207


@pytest.fixture(scope="session")
def file_000006(shared_data: Path) -> Path:
    return shared_data / FILE_000006


def gray_images(n: int, size: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"img{i}": rng.integers(0, 256, (size, size), dtype=np.uint8) for i in range(n)}


@pytest.fixture
def images():
    return gray_images
