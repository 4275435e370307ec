"""Reading what the response adapters need from an NWB file: units with their locations, intervals
tables, stimulus templates and IndexSeries, images from a folder, ΔF/F per imaging plane.
Errors name the file and the missing key."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurofit.data.local import unreadable_nwb_message
from neurofit.image_files import IMAGE_SUFFIXES
from neurofit.neural.regions import decode
from neurofit.paths import is_url

# Columns of a units table that are not per-unit scalars (ragged or references).
NON_SCALAR_UNIT_COLUMNS = {"spike_times", "electrodes", "obs_intervals", "waveforms", "waveform_mean",
                           "waveform_sd", "electrode_group"}
# Stimulus files: any image, or an array saved with numpy.
STIMULUS_FILE_SUFFIXES = (*IMAGE_SUFFIXES, ".npy")


class NWBContentError(ValueError):
    """An NWB file lacks what the configuration asks for, or holds something unusable."""


_gc_pause_lock = threading.Lock()
_gc_pause = {"depth": 0, "was_enabled": False}


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while a streamed (file-like) HDF5 file is open.

    h5py holds its global lock while it calls the file object's ``read``, and freeing an h5py object needs
    that lock. If a collection starts on any other Python thread meanwhile (a Jupyter kernel's, tqdm's
    monitor, an HTTP server in the same process) and finds an h5py object in a reference cycle, that thread
    waits for the lock forever while the reading thread waits for it: the process hangs (h5py documents
    this for file-like objects; h5py issue 2019). Nested and concurrent uses share one pause; the state
    before the first is restored after the last."""
    with _gc_pause_lock:
        if _gc_pause["depth"] == 0:
            _gc_pause["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_pause["depth"] += 1
    try:
        yield
    finally:
        with _gc_pause_lock:
            _gc_pause["depth"] -= 1
            if _gc_pause["depth"] == 0 and _gc_pause["was_enabled"]:
                gc.enable()


# seconds a streamed file's request may wait for the server: remfile sends its requests without a
# timeout, so a stalled connection would hold the job forever; timed out, a request is retried with backoff
# (the range requests by remfile, the length probe here)
STREAM_TIMEOUT_S = 60.0
LENGTH_RETRIES = 8  # as remfile's range requests: 0.1 * (2^8 - 1) = 25.5 s of backoff in all


def _timeout_session(timeout: float) -> Any:
    """A ``requests.Session`` whose requests time out after ``timeout`` s unless they say otherwise."""
    import requests

    class TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    return TimeoutSession()


def _content_length(url: str, session: Any, retries: int = LENGTH_RETRIES) -> int:
    """The size in bytes of the file at ``url``, by a GET whose body is not read (remfile's own probe: it
    has no timeout, and presigned S3 URLs refuse HEAD), through ``session`` (which times out). A client
    error (4xx) is final; a server error, a timeout or a dropped connection is retried with backoff."""
    import requests

    for attempt in range(retries + 1):
        try:
            with session.get(url, stream=True) as response:
                if 400 <= response.status_code < 500:
                    raise NWBContentError(f"{url}: HTTP {response.status_code} {response.reason}")
                response.raise_for_status()
                length = response.headers.get("Content-Length")
                if length is None:
                    raise NWBContentError(f"{url}: the server sends no Content-Length, so the file cannot be "
                                          f"streamed by byte ranges; download it instead (stream: false)")
                return int(length)
        except (requests.ConnectionError, requests.Timeout, requests.HTTPError):
            if attempt == retries:
                raise
            time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")


@contextmanager
def open_nwb_io(source: str | Path) -> Iterator[Any]:
    """An NWBHDF5IO on a local path, or on an http(s) URL streamed with remfile + h5py (only the
    bytes that are read travel)."""
    from pynwb import NWBHDF5IO

    if is_url(source):
        import h5py
        import remfile

        # the session is closed however the open ends (remfile's own close leaves it open)
        with cyclic_gc_paused(), _timeout_session(STREAM_TIMEOUT_S) as session:
            remote = remfile.File(str(source), _size=_content_length(str(source), session))
            remote.session = session
            with closing(remote):
                try:
                    h5 = h5py.File(remote, "r")
                except OSError as error:
                    raise NWBContentError(unreadable_nwb_message(source, error)) from error
                with h5, NWBHDF5IO(file=h5, mode="r", load_namespaces=True) as io:
                    yield io
        return
    if not Path(source).is_file():
        raise NWBContentError(f"{source}: no such NWB file")
    try:
        io = NWBHDF5IO(str(source), "r", load_namespaces=True)
    except OSError as error:  # h5py's message names no file
        raise NWBContentError(unreadable_nwb_message(source, error)) from error
    with io:
        yield io


@contextmanager
def open_nwb(source: str | Path) -> Iterator[Any]:
    """The NWBFile of a local path or an http(s) URL (see :func:`open_nwb_io`)."""
    with open_nwb_io(source) as io:
        yield io.read()


# -- units -----------------------------------------------------------------------------------
@dataclass
class Units:
    """Spike trains with their unit ids, raw locations and the table's other scalar columns."""

    unit_id: np.ndarray
    location: np.ndarray
    spike_times: list[np.ndarray]
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    n_unsorted: int = 0  # units whose spike times were stored unsorted (and sorted here, by policy)


def _ragged(index: Any) -> list[np.ndarray]:
    """A VectorIndex -> one array per row (one read of the index, one of the data)."""
    ends = np.asarray(index.data[:], dtype=np.int64)
    flat = np.asarray(index.target.data[:])
    return np.split(flat, ends[:-1]) if len(ends) else []


def _decoded(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "OSU":
        return np.array([decode(v) for v in array], dtype=object)
    return array


def unit_locations(units: Any, path: str | Path) -> np.ndarray:
    """The units table's own ``location``, else the ``location`` of each unit's first electrode
    (whether the units reference electrodes directly or through ``electrodes_index``)."""
    from hdmf.common.table import VectorIndex

    names = set(units.colnames)
    if "location" in names:
        return np.array([str(decode(v)) for v in units["location"].data[:]], dtype=object)
    if "electrodes" not in names:
        raise NWBContentError(f"{path}: units have neither a 'location' nor an 'electrodes' column, so their "
                              f"regions are unknown; columns: {sorted(names)}")
    column = units["electrodes"]
    if isinstance(column, VectorIndex):
        rows = _ragged(column)
        first = np.array([r[0] if len(r) else -1 for r in rows], dtype=np.int64)
        region = column.target
    else:
        first = np.asarray(column.data[:], dtype=np.int64)
        region = column
    table = region.table
    if "location" not in table.colnames:
        raise NWBContentError(f"{path}: electrodes table {table.name!r} has no 'location' column")
    locations = np.array([str(decode(v)) for v in table["location"].data[:]], dtype=object)
    return np.array([locations[i] if i >= 0 else "unknown" for i in first], dtype=object)


def read_units(nwbfile: Any, path: str | Path, unsorted: str = "error") -> Units:
    """All units of the file. NaN spike times are an error; unsorted ones too unless
    ``unsorted='sort'`` (some published files store spikes trial by trial, e.g. DANDI:000006)."""
    units = nwbfile.units
    if units is None or len(units) == 0:
        raise NWBContentError(f"{path}: the file has no units (no 'units' table, or an empty one)")
    if "spike_times" not in units.colnames:
        raise NWBContentError(f"{path}: the units table has no 'spike_times' column")
    ids = np.asarray(units.id[:])
    trains = [np.asarray(t, dtype=np.float64) for t in _ragged(units["spike_times"])]
    n_unsorted = 0
    for i, times in enumerate(trains):
        if np.isnan(times).any():
            raise NWBContentError(f"{path}: units/spike_times of unit {ids[i]} contain {int(np.isnan(times).sum())} "
                                  f"NaN value(s); spike times must be numbers. NaN usually marks a missing value "
                                  f"left by the conversion: write the file again without them, or, if a unit column "
                                  f"flags such units, drop them with responses.units.quality {{column, keep}}")
        if np.any(np.diff(times) < 0):
            if unsorted != "sort":
                raise NWBContentError(f"{path}: units/spike_times of unit {ids[i]} are not sorted; set "
                                      f"responses.unsorted_spike_times: sort to sort them")
            trains[i] = np.sort(times)
            n_unsorted += 1
    columns = {}
    for name in units.colnames:
        if name in NON_SCALAR_UNIT_COLUMNS or name == "location":
            continue
        data = units[name]
        if hasattr(data, "target"):  # ragged column
            continue
        values = _decoded(data.data[:])
        if values.ndim == 1:
            columns[name] = values
    return Units(unit_id=ids, location=unit_locations(units, path), spike_times=trains, columns=columns,
                 n_unsorted=n_unsorted)


# -- intervals -------------------------------------------------------------------------------
def intervals_tables(nwbfile: Any) -> dict[str, Any]:
    tables = dict(nwbfile.intervals or {})
    if nwbfile.trials is not None:
        tables.setdefault("trials", nwbfile.trials)
    return tables


def table_frame(table: Any) -> pd.DataFrame:
    """A table's one-dimensional columns as a DataFrame, bytes decoded. Columns are read one by one
    because hdmf's ``to_dataframe`` replaces a column called ``name`` by the table's own name;
    ragged columns and references (tags, timeseries) are left out."""
    columns = {}
    for name in table.colnames:
        column = table[name]
        if hasattr(column, "target") or type(column).__name__ in ("TimeSeriesReferenceVectorData",
                                                                  "DynamicTableRegion"):
            continue
        values = np.asarray(column.data[:])
        if values.ndim == 1 and values.dtype.names is None:
            columns[name] = _decoded(values)
    return pd.DataFrame(columns, index=pd.Index(np.asarray(table.id[:]), name="id"))


def read_intervals(nwbfile: Any, path: str | Path, table: str) -> pd.DataFrame:
    """An intervals table as a DataFrame (bytes decoded); the error lists the tables that exist."""
    tables = intervals_tables(nwbfile)
    if table not in tables:
        raise NWBContentError(f"{path}: no intervals table {table!r} (responses.table); tables in the file: "
                              f"{sorted(tables)}")
    return table_frame(tables[table])


# -- stimulus images -------------------------------------------------------------------------
def to_unit_range(image: Any) -> np.ndarray:
    """An image as float32 in [0, 1] (integer images are scaled by their type's range)."""
    array = np.asarray(image)
    if array.dtype.kind in "ui":
        return (array / np.iinfo(array.dtype).max).astype(np.float32)
    array = array.astype(np.float32)
    return array / 255.0 if array.size and array.max() > 1.0 else array


def _images_of(container: Any, name: str) -> tuple[list[str], list[np.ndarray]]:
    if hasattr(container, "images"):  # an Images container
        order = getattr(container, "order_of_images", None)
        images = list(order.data) if order is not None else list(container.images.values())
        return [img.name for img in images], [to_unit_range(img.data) for img in images]
    frames = np.asarray(container.data)  # an ImageSeries holding frames (n, H, W[, C])
    return [f"{name}_{i:04d}" for i in range(len(frames))], [to_unit_range(f) for f in frames]


def template_containers(nwbfile: Any) -> dict[str, Any]:
    return dict(nwbfile.stimulus_template or {})


def read_templates(nwbfile: Any, path: str | Path, name: str | None) -> tuple[list[str], list[np.ndarray]]:
    """Images of a ``stimulus_template`` Images container (or ImageSeries): names in order, arrays."""
    templates = template_containers(nwbfile)
    if not templates:
        raise NWBContentError(f"{path}: no stimulus_template in the file (no stimulus images); use "
                              f"responses.adapter: table_folder with images from a folder")
    if name is None:
        if len(templates) > 1:
            raise NWBContentError(f"{path}: several stimulus templates {sorted(templates)}; name one in "
                                  f"responses.templates")
        name = next(iter(templates))
    if name not in templates:
        raise NWBContentError(f"{path}: no stimulus template {name!r} (responses.templates); templates: "
                              f"{sorted(templates)}")
    return _images_of(templates[name], name)


def read_index_series(nwbfile: Any, path: str | Path, name: str) -> tuple[np.ndarray, np.ndarray, list[str],
                                                                          list[np.ndarray]]:
    """An IndexSeries in ``/stimulus``: (onsets, indices, image names, images) of the Images (or
    ImageSeries) it indexes."""
    series = dict(nwbfile.stimulus or {})
    if name not in series:
        raise NWBContentError(f"{path}: no stimulus series {name!r} (responses.index_series); stimulus series: "
                              f"{sorted(series)}")
    index = series[name]
    target = getattr(index, "indexed_images", None) or getattr(index, "indexed_timeseries", None)
    if target is None:
        raise NWBContentError(f"{path}: stimulus series {name!r} is not an IndexSeries over Images")
    names, images = _images_of(target, target.name)
    return series_times(index), np.asarray(index.data[:]), names, images


def series_times(series: Any) -> np.ndarray:
    """Sample times of a TimeSeries: its timestamps, or starting_time + i / rate."""
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    n = len(series.data)
    return float(series.starting_time or 0.0) + np.arange(n, dtype=np.float64) / float(series.rate)


def read_folder_images(ids: list[str], folder: str | Path, pattern: str, path: str | Path) -> dict[str, np.ndarray]:
    """``{id: image}`` for stimulus ids whose files ``folder / pattern.format(id=...)`` exist; the error
    lists the ids whose files are missing. Ids come from the NWB file, which may come from anyone: a
    file that resolves outside the folder (``../secret.png``, an absolute path, a link) is refused."""
    root = Path(folder)
    if not root.is_dir():
        raise NWBContentError(f"{path}: stimulus folder {root} (responses.stimuli.path) does not exist")
    check_stimulus_pattern(pattern)
    inside = root.resolve()
    files = {sid: root / pattern.format(id=sid) for sid in ids}
    outside = [sid for sid, file in files.items() if not file.resolve().is_relative_to(inside)]
    if outside:
        raise NWBContentError(f"{path}: {len(outside)} stimulus id(s) name files outside the stimulus folder {root} "
                              f"(responses.stimuli.path), e.g. {outside[:5]}; refused: stimulus ids must name files "
                              f"inside that folder")
    missing = [sid for sid, file in files.items() if not file.is_file()]
    if missing:
        raise NWBContentError(f"{path}: {len(missing)} of {len(ids)} stimulus ids have no file in {root} "
                              f"(pattern {pattern!r}), e.g. {missing[:5]}")
    return {sid: read_image_file(file) for sid, file in files.items()}


def check_stimulus_pattern(pattern: str) -> None:
    """``responses.stimuli.pattern`` may only hold ``{id}`` as a field: ``str.format`` would otherwise
    reach attributes (``{id.__class__}``) or fail with a KeyError."""
    import string

    try:
        fields = [(name, spec, conversion) for _text, name, spec, conversion in string.Formatter().parse(pattern)
                  if name is not None]
    except ValueError as error:
        raise NWBContentError(f"responses.stimuli.pattern {pattern!r}: {error}; write e.g. '{{id}}.png'") from error
    if any(field != ("id", "", None) for field in fields):
        raise NWBContentError(f"responses.stimuli.pattern {pattern!r}: only the field {{id}} is allowed (no other "
                              f"names, attributes, indices or format specs); write e.g. '{{id}}.png'")


def read_image_file(file: Path) -> np.ndarray:
    if file.suffix.lower() not in STIMULUS_FILE_SUFFIXES:
        raise NWBContentError(f"{file}: not an image file this stage reads ({list(STIMULUS_FILE_SUFFIXES)}); "
                              f"videos must be converted to frames first")
    if file.suffix.lower() == ".npy":
        return to_unit_range(np.load(file))
    from PIL import Image

    with Image.open(file) as img:
        if img.mode not in ("L", "I", "I;16", "F"):
            img = img.convert("RGB")  # palette, RGBA, CMYK -> RGB (alpha dropped)
        return to_unit_range(np.asarray(img))


def stack_images(images: dict[str, np.ndarray], resize: str | list[int], where: str) -> np.ndarray:
    """One array (n, H, W[, 3]) in the order of ``images``. Images of different sizes are an error
    unless ``resize`` is ``[H, W]``; mixed grey and colour images are then all made colour."""
    arrays = list(images.values())
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1 or (resize != "error" and shapes != {tuple(resize)} and shapes != {(*resize, 3)}):
        if resize == "error":
            raise NWBContentError(f"{where}: stimulus images have different sizes {sorted(shapes)[:5]}; set "
                                  f"responses.resize: [height, width] to resize them")
        colour = any(a.ndim == 3 for a in arrays)
        arrays = [_resize(a, tuple(resize), colour) for a in arrays]
    return np.stack(arrays).astype(np.float32)


def _resize(image: np.ndarray, size: tuple[int, int], colour: bool) -> np.ndarray:
    from PIL import Image

    if image.ndim == 3:
        image = image[..., :3]
    elif colour:
        image = np.repeat(image[..., None], 3, axis=-1)
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[-1])]
    out = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((size[1], size[0]),
                                                                             Image.Resampling.BILINEAR))
           for c in channels]
    return out[0] if image.ndim == 2 else np.stack(out, axis=-1)


# -- calcium imaging -------------------------------------------------------------------------
@dataclass
class PlaneTraces:
    """ΔF/F (or another ROI response) of one series: samples (time, roi) of ROIs in one plane."""

    series: str
    plane: str
    location: str
    roi_id: np.ndarray
    times: np.ndarray
    data: np.ndarray


def roi_series(nwbfile: Any) -> list[tuple[str, str, Any]]:
    """Every RoiResponseSeries in the processing modules: (path, container type, series)."""
    found = []
    for module_name, module in (nwbfile.processing or {}).items():
        for iface_name, iface in module.data_interfaces.items():
            kind = type(iface).__name__
            if hasattr(iface, "roi_response_series"):  # DfOverF, Fluorescence
                for series_name, series in iface.roi_response_series.items():
                    found.append((f"{module_name}/{iface_name}/{series_name}", kind, series))
            elif kind == "RoiResponseSeries":
                found.append((f"{module_name}/{iface_name}", kind, iface))
    return found


def read_ophys(nwbfile: Any, path: str | Path, series: str | None = None) -> list[PlaneTraces]:
    """ΔF/F traces per imaging plane: every series in a ``DfOverF`` container, or those whose path
    ends with ``series`` (responses.ophys_series)."""
    found = roi_series(nwbfile)
    if series is None:
        chosen = [f for f in found if f[1] == "DfOverF"]
    else:
        chosen = [f for f in found if f[0] == series or f[0].endswith("/" + series)]
    if not chosen:
        wanted = f"series {series!r} (responses.ophys_series)" if series else "DfOverF container"
        raise NWBContentError(f"{path}: no {wanted}; ROI response series in the file: {[f[0] for f in found]}")
    planes = []
    for name, _kind, s in chosen:
        data = np.asarray(s.data[:], dtype=np.float64)
        if data.ndim == 1:
            data = data[:, None]
        segmentation = s.rois.table
        roi_ids = np.asarray(segmentation.id[:])[np.asarray(s.rois.data[:], dtype=np.int64)]
        plane = segmentation.imaging_plane
        planes.append(PlaneTraces(series=name, plane=plane.name, location=str(decode(plane.location)),
                                  roi_id=roi_ids, times=series_times(s), data=data))
    return planes
