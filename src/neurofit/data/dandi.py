"""DANDI Archive -> verified local NWB files (or their URLs, when streaming) + a manifest, via the real dandi client.

A dataset names assets the way DANDI does: a dandiset, a published version, asset paths or globs. The
patterns are resolved once into ``<cache>/dandi/<id>/<version>/manifest.json`` (asset ids, sizes, digests),
keyed by the patterns. Downloads follow that record through :func:`dandi.download.download`, which checks
the ``dandi:dandi-etag`` digest while the bytes arrive (and over the whole file after a resumed download).
A file is moved to ``<cache>/dandi/<id>/<version>/<asset path>`` and made read-only only once verified, so
a file found there is a verified file and a rerun with the files present makes no request at all.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import fnmatch
import io
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from neurofit.data.local import DatasetError
from neurofit.paths import Layout, recorded_path

log = logging.getLogger("neurofit.data.dandi")

DANDISET_ID = re.compile(r"[0-9]{6}")
PUBLISHED_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
DRAFT = "draft"
GLOB_CHARS = frozenset("*?[")
ETAG = "dandi:dandi-etag"
#: Reachability checks of the server before any work: attempts, and the first pause (doubling) between them.
PROBE_ATTEMPTS = 3
PROBE_BACKOFF_S = 1.0
PROBE_TIMEOUT_S = 10.0


class DandiError(DatasetError):
    """A DANDI dataset that cannot be resolved or fetched as configured."""


class DraftVersionWarning(UserWarning):
    """A dataset reads a dandiset's draft, whose content can change: the results are not reproducible."""


@dataclass(frozen=True)
class DandiSpec:
    """One ``source: dandi`` dataset entry, checked without any request."""

    name: str
    dandiset: str
    version: str
    assets: tuple[str, ...]
    instance: str = "dandi"
    api_url: str | None = None
    allow_draft: bool = False
    stream: bool = False

    @classmethod
    def from_config(cls, name: str, entry: dict[str, Any]) -> DandiSpec:
        key = f"datasets.{name}"
        dandiset = str(entry.get("dandiset", ""))
        if not DANDISET_ID.fullmatch(dandiset):
            raise DandiError(f"{key}.dandiset: {dandiset!r} is not a DANDI identifier (six digits, e.g. '000021')")
        version = str(entry.get("version", ""))
        if version != DRAFT and not PUBLISHED_VERSION.fullmatch(version):
            raise DandiError(f"{key}.version: {version!r} is neither a published version (e.g. '0.210913.1639') "
                             f"nor 'draft'")
        allow_draft = bool(entry.get("allow_draft", False))
        if version == DRAFT and not allow_draft:
            raise DandiError(f"{key}.version: 'draft' can change at any time, so results from it are not "
                             f"reproducible; name a published version, or set {key}.allow_draft: true")
        assets = tuple(entry.get("assets") or ())
        if not assets:
            raise DandiError(f"{key}.assets: list the asset paths or globs to use (e.g. 'sub-*/*.nwb')")
        for pattern in assets:
            safe_asset_path(pattern, f"{key}.assets")
        instance = entry.get("instance", "dandi")
        api_url = entry.get("api_url")
        if api_url is not None and "instance" in entry:
            raise DandiError(f"{key}: give either 'instance' or 'api_url', not both")
        if api_url is None:
            from dandi.consts import known_instances

            if instance not in known_instances:
                raise DandiError(f"{key}.instance: unknown DANDI instance {instance!r}"
                                 f"{close_matches(instance, list(known_instances))}; or give api_url")
        elif not re.fullmatch(r"https?://[^/]+(/api)?/?", api_url):
            raise DandiError(f"{key}.api_url: {api_url!r} is not a DANDI API URL like 'https://host/api'")
        spec = cls(name, dandiset, version, assets, instance, api_url, allow_draft, bool(entry.get("stream", False)))
        if version == DRAFT:
            warnings.warn(spec.draft_warning(), DraftVersionWarning, stacklevel=2)
        return spec

    @property
    def server(self) -> str:
        """The API base URL, e.g. ``https://api.dandiarchive.org/api`` (known instances need no request)."""
        if self.api_url:
            return self.api_url.rstrip("/")
        from dandi.consts import known_instances

        return known_instances[self.instance].api.rstrip("/")

    def draft_warning(self) -> str:
        return (f"datasets.{self.name}: dandiset {self.dandiset} version 'draft' can change at any time; "
                f"results from it are not reproducible (the first resolution is cached and reused)")


def close_matches(word: str, candidates: list[str]) -> str:
    """``; close matches: [...]`` for an error message, or how many candidates there were."""
    found = difflib.get_close_matches(word, candidates, n=5, cutoff=0.5)
    if found:
        return f"; close matches: {found}"
    return f"; no close match among {len(candidates)}" + (f" (e.g. {candidates[:5]})" if candidates else "")


def safe_asset_path(path: str, what: str) -> PurePosixPath:
    """A relative path that stays inside the dandiset folder; anything else is refused before it is used."""
    parts = PurePosixPath(path).parts
    if (not path.strip() or path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path) or "\\" in path
            or ".." in parts):
        raise DandiError(f"{what}: asset path {path!r} is absolute or leaves the dandiset folder; refused")
    return PurePosixPath(path)


# -- resolution: patterns -> asset records (network) ------------------------------------------------------------
def probe(server: str) -> None:
    """Fail fast, naming the URL, when the server cannot be reached (bounded retries with backoff)."""
    import requests

    url = f"{server}/info/"
    problem: object = None
    for attempt in range(1, PROBE_ATTEMPTS + 1):
        try:
            response = requests.get(url, timeout=PROBE_TIMEOUT_S)
        except requests.RequestException as exc:
            problem = exc
        else:
            if response.ok:
                return
            if response.status_code < 500:
                raise DandiError(f"{url} answered HTTP {response.status_code}: not a DANDI API server")
            problem = f"HTTP {response.status_code}"
        if attempt < PROBE_ATTEMPTS:
            time.sleep(PROBE_BACKOFF_S * 2 ** (attempt - 1))
    raise DandiError(f"DANDI server {url} unreachable after {PROBE_ATTEMPTS} attempts: {problem}")


def resolve(spec: DandiSpec) -> list[dict[str, Any]]:
    """Ask the server which assets the patterns name, with their ids, sizes and digests."""
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError

    key = f"datasets.{spec.name}"
    probe(spec.server)
    with DandiAPIClient(api_url=spec.server) as client:
        try:
            dandiset = client.get_dandiset(spec.dandiset, lazy=False)
        except NotFoundError:
            known = [d.identifier for d in client.get_dandisets()]
            raise DandiError(f"{key}.dandiset: no dandiset {spec.dandiset!r} on {spec.server}"
                             f"{close_matches(spec.dandiset, known)}") from None
        try:
            dandiset = dandiset.for_version(dandiset.draft_version if spec.version == DRAFT else spec.version)
        except NotFoundError:
            known = [v.identifier for v in dandiset.get_versions()]
            raise DandiError(f"{key}.version: dandiset {spec.dandiset} has no version {spec.version!r} on "
                             f"{spec.server}{close_matches(spec.version, known)}") from None
        records = []
        for asset in _match(spec, dandiset):
            safe_asset_path(asset.path, f"{key}: the server's asset")
            if asset.asset_type.name != "BLOB":
                raise DandiError(f"{key}.assets: {asset.path!r} is a Zarr asset; only NWB (HDF5) blobs are supported")
            digest = dict(asset.get_raw_metadata().get("digest", {}))
            if ETAG not in digest:
                raise DandiError(f"{key}: asset {asset.path!r} has no {ETAG} digest to verify it; digests: {digest}")
            records.append({"path": asset.path, "asset_id": asset.identifier, "size": asset.size, "digest": digest,
                            "modified": asset.modified.isoformat(), "url": asset.base_download_url})
    return records


def _match(spec: DandiSpec, dandiset: Any) -> list[Any]:
    """Assets per pattern in config order (each once): exact paths via ``?path=``, globs (``fnmatch``, where
    ``*`` also crosses ``/``) against the full listing."""
    chosen: dict[str, Any] = {}
    listing: list[Any] | None = None
    for pattern in spec.assets:
        if GLOB_CHARS & set(pattern):
            listing = listing if listing is not None else list(dandiset.get_assets(order="path"))
            hits = [a for a in listing if fnmatch.fnmatchcase(a.path, pattern)]
        else:
            hits = [a for a in dandiset.get_assets_with_path_prefix(pattern, order="path") if a.path == pattern]
        if not hits:
            listing = listing if listing is not None else list(dandiset.get_assets(order="path"))
            raise DandiError(f"datasets.{spec.name}.assets: {pattern!r} matches no asset of dandiset "
                             f"{spec.dandiset} version {spec.version} on {spec.server}"
                             f"{close_matches(pattern, [a.path for a in listing])}")
        for asset in hits:
            chosen.setdefault(asset.path, asset)
    return list(chosen.values())


# -- the cache: resolution record + verified files ------------------------------------------------------------
def acquire(spec: DandiSpec, cache: str | Path) -> dict[str, Any]:
    """Resolve (once) and download (what is missing) the dataset's assets under ``cache``; return the
    dataset manifest in the format of :func:`neurofit.data.local.local_manifest`."""
    from fasteners import InterProcessLock

    layout = Layout(resources=str(cache))
    root = Path(layout.dandi_dir(spec.dandiset, spec.version))
    record_path = Path(layout.dandi_resolution(spec.dandiset, spec.version))
    if spec.version == DRAFT:
        log.warning(spec.draft_warning())
    root.mkdir(parents=True, exist_ok=True)
    # One process at a time per dandiset version, also across workflows that share the cache.
    with InterProcessLock(str(root / ".lock")):
        assets = _resolution(spec, record_path)
        if spec.stream:
            log.info("streaming %d asset(s) of dandiset %s/%s; nothing downloaded", len(assets), spec.dandiset,
                     spec.version)
        else:
            _download_missing(spec, layout, root, assets)
    return {
        "source": "dandi",
        "dandiset": spec.dandiset,
        "version": spec.version,
        "api_url": spec.server,
        "stream": spec.stream,
        "root": recorded_path(root.resolve()),
        "resolution": recorded_path(record_path.resolve()),
        "assets": [
            {"path": a["path"], "local_path": None if spec.stream else recorded_path((root / a["path"]).resolve()),
             "url": a["url"], "asset_id": a["asset_id"], "size": a["size"], "digest": a["digest"]}
            for a in assets
        ],
    }


def _resolution(spec: DandiSpec, record_path: Path) -> list[dict[str, Any]]:
    """The cached resolution of these patterns, or a new one (recorded before anything is downloaded)."""
    if record_path.exists():
        record = json.loads(record_path.read_text())
    else:
        record = {"dandiset": spec.dandiset, "version": spec.version, "api_url": spec.server, "resolutions": {},
                  "assets": {}}
    if record["api_url"] != spec.server:
        raise DandiError(f"datasets.{spec.name}: the cache {record_path.parent} holds dandiset {spec.dandiset} "
                         f"{spec.version} from {record['api_url']}, not {spec.server}; set a different cache_dir")
    key = json.dumps(list(spec.assets))
    if key in record["resolutions"]:
        assets = [record["assets"][path] for path in record["resolutions"][key]]
        log.info("asset list of %s/%s from %s (no request)", spec.dandiset, spec.version, record_path)
    else:
        assets = resolve(spec)
        for asset in assets:
            known = record["assets"].get(asset["path"])
            if known is not None and known["asset_id"] != asset["asset_id"]:
                raise DandiError(f"datasets.{spec.name}: {record_path} records asset {known['asset_id']} at "
                                 f"{asset['path']!r} but the server now has {asset['asset_id']} (a changed draft?); "
                                 f"the cached copy is kept: use a different cache_dir")
            record["assets"][asset["path"]] = asset
        record["resolutions"][key] = [a["path"] for a in assets]
        tmp = record_path.with_name(record_path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, record_path)
        log.info("resolved %s to %d asset(s) of %s/%s; recorded in %s", list(spec.assets), len(assets),
                 spec.dandiset, spec.version, record_path)
    for asset in assets:  # also a hand-edited record never writes outside the cache
        safe_asset_path(asset["path"], str(record_path))
    return assets


def _download_missing(spec: DandiSpec, layout: Layout, root: Path, assets: list[dict[str, Any]]) -> None:
    from tqdm import tqdm

    todo = []
    for asset in assets:
        target = root / asset["path"]
        if not target.exists():
            todo.append(asset)
        elif target.stat().st_size != asset["size"]:
            raise DandiError(f"{target} has {target.stat().st_size} bytes, asset {asset['asset_id']} has "
                             f"{asset['size']}; it is left untouched: move it away to download the asset again")
    if not todo:
        log.info("all %d asset(s) of %s/%s present in %s (no request)", len(assets), spec.dandiset, spec.version,
                 root)
        return
    probe(spec.server)
    with tqdm(total=sum(a["size"] for a in todo), unit="B", unit_scale=True,
              desc=f"DANDI {spec.dandiset}/{spec.version}") as bar:
        for asset in todo:
            _fetch(spec, layout, root, asset, bar)


def _fetch(spec: DandiSpec, layout: Layout, root: Path, asset: dict[str, Any], bar: Any) -> None:
    """One asset through dandi.download into its staging folder, then (verified) into place, read-only."""
    from dandi.download import DownloadExisting, DownloadFormat, download

    target = root / asset["path"]
    staging = Path(layout.dandi_staging(spec.dandiset, spec.version, asset["asset_id"]))
    name = PurePosixPath(asset["path"]).name
    staged = staging / name
    url = f"{spec.server}/dandisets/{spec.dandiset}/versions/{spec.version}/assets/{asset['asset_id']}/download/"
    log.info("downloading %s (%d bytes, asset %s)", asset["path"], asset["size"], asset["asset_id"])
    start = bar.n
    printed = io.StringIO()  # the client's records (format=debug prints them); errors are read from them
    failure: Exception | None = None
    with _progress(bar, staging / f"{name}.dandidownload" / "file"), contextlib.redirect_stdout(printed):
        try:
            # OVERWRITE_DIFFERENT: a staged file left by a killed run is kept only if its dandi-etag matches.
            download(url, staging, existing=DownloadExisting.OVERWRITE_DIFFERENT, format=DownloadFormat.DEBUG,
                     get_metadata=False, jobs=1)
        except Exception as exc:  # the client raises RuntimeError on bad records, requests errors, NotFoundError
            failure = exc
    records = _records(printed.getvalue())
    errors = [r.get("message", r) for r in records if r.get("status") == "error"]
    if failure is None and not errors and not (staged.is_file() and staged.stat().st_size == asset["size"]):
        errors = [f"the client left no file of {asset['size']} bytes at {staged}"]
    if failure is not None or errors:
        received = _bytes_received(staged, staging / f"{name}.dandidownload" / "file")
        short = received is not None and received < asset["size"]
        if short or "part hashes" in str(errors[0] if errors else failure):
            # The client's digester says "Not all part hashes submitted" when fewer bytes came than advertised.
            errors = [f"the server sent {received if received is not None else 'fewer'} of the {asset['size']} "
                      f"bytes the archive advertises: the file is shorter than its advertised size (a truncated "
                      f"blob on the server, or a proxy cutting the transfer); run again later, and if it persists "
                      f"report the asset to the dandiset's maintainers"]
        staged.unlink(missing_ok=True)  # bytes that failed verification never stay where a good file would be
        raise DandiError(f"{asset['path']} (asset {asset['asset_id']}) from {url} failed: "
                         f"{errors[0] if errors else failure}; nothing was placed at {target}") from failure
    staged.chmod(0o444)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    with contextlib.suppress(OSError):
        staging.rmdir()
    bar.n = start + asset["size"]
    bar.refresh()
    log.info("verified %s (%s %s) -> %s", asset["path"], ETAG, asset["digest"][ETAG], target)


def _bytes_received(*candidates: Path) -> int | None:
    """Size of the largest file the client left (staged file or its partial download), if any."""
    sizes = [path.stat().st_size for path in candidates if path.is_file()]
    return max(sizes) if sizes else None


def _records(printed: str) -> list[dict[str, Any]]:
    records = []
    for line in printed.splitlines():
        with contextlib.suppress(ValueError, SyntaxError):
            record = ast.literal_eval(line.strip())
            if isinstance(record, dict):
                records.append(record)
    return records


@contextlib.contextmanager
def _progress(bar: Any, partial: Path) -> Iterator[None]:
    """Advance ``bar`` as the client's partial file grows (the client reports progress only to its own table)."""
    start = bar.n
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(OSError):
                bar.n = start + partial.stat().st_size
                bar.refresh()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
