"""Open a manifest's asset as an HDF5 file: its verified local copy, or (streaming) the remote file over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from neurofit.data.local import DatasetError


@contextmanager
def open_asset(asset: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(name, h5py.File)`` for one entry of ``manifest["assets"]``.

    With a ``local_path`` the file is read from disk; without one (``stream: true``) only the byte ranges
    h5py asks for are fetched from ``url`` with remfile. ``name`` is the local path or the asset's path in
    its dandiset, for messages and session names."""
    import h5py

    local = asset.get("local_path")
    if local:
        if not Path(local).is_file():
            raise DatasetError(f"{local} (asset {asset.get('path')!r}) is missing; rerun the manifest rule "
                               f"(snakemake -R manifest) to fetch it again")
        with h5py.File(local, "r") as file:
            yield str(local), file
        return
    url = asset.get("url")
    if not url:
        raise DatasetError(f"asset {asset.get('path')!r} has neither a local_path nor a url in its manifest")
    import remfile

    remote = remfile.File(url)
    try:
        with h5py.File(remote, "r") as file:
            yield str(asset["path"]), file
    finally:
        remote.close()
