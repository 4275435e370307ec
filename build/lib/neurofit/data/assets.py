"""Where to read a manifest's asset from: its verified local copy, or (streaming) its URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurofit.data.local import DatasetError


def asset_source(asset: dict[str, Any]) -> str:
    """The local path of one entry of ``manifest["assets"]``, or its URL when it is streamed
    (``stream: true``; :func:`neurofit.neural.nwb.open_nwb_io` then fetches only the byte ranges
    h5py asks for, with remfile)."""
    local = asset.get("local_path")
    if local:
        if not Path(local).is_file():
            raise DatasetError(f"{local} (asset {asset.get('path')!r}) is missing; rerun the manifest rule "
                               f"(snakemake -R manifest) to fetch it again")
        return str(local)
    url = asset.get("url")
    if not url:
        raise DatasetError(f"asset {asset.get('path')!r} has neither a local_path nor a url in its manifest")
    return str(url)
