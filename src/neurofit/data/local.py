"""A dandiset folder on disk (the simulator writes one) -> manifest.json."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from neurofit.paths import recorded_path


class DatasetError(ValueError):
    """A dataset that cannot be used as configured."""


def sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def unreadable_nwb_message(path: str | Path, reason: object) -> str:
    """What a user reads when a file named ``.nwb`` is not HDF5 (a text or HTML page saved under that name) or
    is cut short (an interrupted copy or download)."""
    cut = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", str(reason))
    if cut:
        what = (f"it is truncated: {cut[1]} of the {cut[2]} bytes its HDF5 header records. Delete it (from the "
                f"cache, for a DANDI download) so it is fetched again, or copy it again")
    else:
        what = (f"{reason}. If it was downloaded, the server may have sent an error page or a cut-short file: "
                f"delete it (from the cache, for a DANDI download) so it is fetched again")
    return f"{path}: not a readable NWB/HDF5 file; {what}"


def check_hdf5(path: str | Path) -> None:
    """Refuse a file that h5py cannot open, naming it (h5py's own OSError does not)."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
    except OSError as error:
        raise DatasetError(unreadable_nwb_message(path, error)) from error


def local_manifest(folder: str | Path, assets: list[str] | None = None) -> dict[str, Any]:
    """Record the NWB files of a local dandiset folder (optionally only those matching ``assets``
    globs), with sizes and sha256 digests."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"local dandiset folder {root} does not exist")
    patterns = assets or ["**/*.nwb"]
    files: list[Path] = []
    for pattern in patterns:
        matched = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matched:
            raise DatasetError(f"{root}: asset pattern {pattern!r} matches no file")
        files.extend(p for p in matched if p not in files)
    for file in files:  # fail here, naming the file, not deep inside a later stage
        check_hdf5(file)
    meta_file = root / "dandiset.yaml"
    meta = yaml.safe_load(meta_file.read_text()) if meta_file.exists() else {}
    return {
        "source": "local",
        "dandiset": str(meta.get("identifier", root.name)),
        "version": str(meta.get("version", "local")),
        "root": recorded_path(root.resolve()),
        "assets": [
            {"path": p.relative_to(root).as_posix(), "local_path": recorded_path(p.resolve()), "size": p.stat().st_size,
             "digest": {"sha256": sha256(p)}}
            for p in files
        ],
    }


def write_manifest(manifest: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(manifest, indent=2))


def read_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
