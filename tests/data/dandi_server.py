"""A DANDI-API-compatible HTTP server on 127.0.0.1, for offline tests of the real ``dandi`` client.

It answers what the client reads: ``/server-info`` (404 here, so the client falls back to ``/api/info/``),
dandisets, versions, version info, paginated asset listings (``?path=`` prefix), asset metadata (and
``/api/assets/{id}/info/``) with
``dandi:dandi-etag`` digests (computed with ``dandischema``), and ``/api/assets/{id}/download/`` as a 302
to a blob URL that honours ``Range``. Faults for tests: ``corrupt`` (blob served with one byte flipped),
``cut`` (the next N blob responses stop halfway), ``truncate`` (the blob holds only its first N bytes,
served whole: shorter than the size the metadata advertises), ``status`` (every request answers this HTTP status).
Every request is logged in ``requests`` as ``(method, path with query, Range header)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from dandischema.digests.dandietag import DandiETag

STAMP = "2024-01-01T00:00:00.000000Z"
# The dandiset the tests serve (tests/data/conftest.py): a published version and its draft.
DANDISET = "000999"
VERSION = "0.240101.0001"
NWB_PATH = "sub-sim/sub-sim_ses-1_ecephys.nwb"
SECOND_PATH = "sub-sim/sub-sim_ses-2_ecephys.nwb"
OTHER_PATH = "sub-other/sub-other_ses-1_behavior.nwb"


def dandi_etag(data: bytes) -> str:
    etag = DandiETag(len(data))
    for part in etag.get_parts():
        etag.update(data[part.offset:part.offset + part.size])
    return etag.as_str()


@dataclass
class Asset:
    path: str
    data: bytes
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def metadata(self, base: str) -> dict:
        return {
            "id": f"dandiasset:{self.asset_id}", "identifier": self.asset_id, "schemaKey": "Asset",
            "path": self.path, "contentSize": len(self.data), "encodingFormat": "application/x-nwb",
            "digest": {"dandi:dandi-etag": dandi_etag(self.data),
                       "dandi:sha2-256": hashlib.sha256(self.data).hexdigest()},
            "contentUrl": [f"{base}/api/assets/{self.asset_id}/download/", f"{base}/blobs/{self.asset_id}"],
            "blobDateModified": STAMP, "dateModified": STAMP,
        }

    def listing(self) -> dict:
        return {"asset_id": self.asset_id, "blob": self.asset_id, "zarr": None, "path": self.path,
                "size": len(self.data), "created": STAMP, "modified": STAMP}


class FakeArchive:
    """``archive.add(dandiset, version, path, data)`` then point the client at ``archive.api_url``."""

    def __init__(self, page_size: int = 2) -> None:
        self.dandisets: dict[str, dict[str, dict[str, Asset]]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.corrupt: set[str] = set()
        self.cut: dict[str, int] = {}
        self.truncate: dict[str, int] = {}
        self.status: int | None = None
        self.page_size = page_size
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.api_url = f"{self.url}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, dandiset: str, version: str, path: str, data: bytes) -> Asset:
        versions = self.dandisets.setdefault(dandiset, {"draft": {}})
        asset = Asset(path, data)
        versions.setdefault(version, {})[path] = asset
        return asset

    def asset(self, asset_id: str) -> Asset | None:
        for versions in self.dandisets.values():
            for assets in versions.values():
                for asset in assets.values():
                    if asset.asset_id == asset_id:
                        return asset
        return None

    def paths(self, prefix: str = "") -> list[str]:
        return [path for method, path, _ in self.requests if path.startswith(prefix)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- JSON bodies --------------------------------------------------------------------------------------------
    def version(self, dandiset: str, version: str, info: bool = False) -> dict:
        assets = self.dandisets[dandiset][version]
        body = {"version": version, "name": f"Test dandiset {dandiset}", "asset_count": len(assets),
                "size": sum(len(a.data) for a in assets.values()), "created": STAMP, "modified": STAMP,
                "status": "Valid" if version == "draft" else "Published", "dandiset": {"identifier": dandiset}}
        if info:
            body.update(asset_validation_errors=[], version_validation_errors=[],
                        metadata=self.version_metadata(dandiset, version))
        return body

    def version_metadata(self, dandiset: str, version: str) -> dict:
        return {"identifier": f"DANDI:{dandiset}", "id": f"DANDI:{dandiset}/{version}", "version": version,
                "name": f"Test dandiset {dandiset}", "schemaKey": "Dandiset"}

    def dandiset(self, dandiset: str) -> dict:
        published = sorted(v for v in self.dandisets[dandiset] if v != "draft")
        return {"identifier": dandiset, "created": STAMP, "modified": STAMP, "contact_person": "Test, Person",
                "embargo_status": "OPEN", "draft_version": self.version(dandiset, "draft"),
                "most_recent_published_version": self.version(dandiset, published[-1]) if published else None}


def _handler(archive: FakeArchive) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_HEAD(self) -> None:
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:
            archive.requests.append((self.command, self.path, self.headers.get("Range")))
            if archive.status is not None:
                return self._json({"detail": "fault injected by the test"}, archive.status)
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            route = url.path
            if route == "/api/info/":
                return self._json({"version": "0.4.0", "cli-minimal-version": "0.60.0", "cli-bad-versions": [],
                                   "services": {"api": {"url": archive.api_url}, "webui": {"url": archive.url}}})
            if route == "/api/dandisets/":
                return self._page([archive.dandiset(d) for d in sorted(archive.dandisets)], query, url.path)
            if m := re.fullmatch(r"/api/assets/([^/]+)/(download/|info/)?", route):
                asset = archive.asset(m[1])
                if asset is None:
                    return self._json({"detail": "Not found."}, 404)
                if m[2] == "info/":
                    return self._json({**asset.listing(), "metadata": asset.metadata(archive.url)})
                if m[2]:
                    return self._redirect(f"{archive.url}/blobs/{asset.asset_id}")
                return self._json(asset.metadata(archive.url))
            if m := re.fullmatch(r"/blobs/([^/]+)", route):
                asset = archive.asset(m[1])
                return self._blob(asset, head) if asset else self._json({"detail": "Not found."}, 404)
            if not (m := re.fullmatch(r"/api/dandisets/(\d{6})/(.*)", route)):
                return self._json({"detail": "Not found."}, 404)
            dandiset, rest = m[1], m[2]
            if dandiset not in archive.dandisets:
                return self._json({"detail": "Not found."}, 404)
            versions = archive.dandisets[dandiset]
            if rest == "":
                return self._json(archive.dandiset(dandiset))
            if rest == "versions/":
                return self._page([archive.version(dandiset, v) for v in sorted(versions)], query, url.path)
            if not (m := re.fullmatch(r"versions/([^/]+)/(.*)", rest)) or m[1] not in versions:
                return self._json({"detail": "Not found."}, 404)
            version, rest = m[1], m[2]
            assets = versions[version]
            if rest == "":
                return self._json(archive.version_metadata(dandiset, version))
            if rest == "info/":
                return self._json(archive.version(dandiset, version, info=True))
            if rest == "assets/":
                prefix = query.get("path", "")
                chosen = [a.listing() for p, a in sorted(assets.items()) if p.startswith(prefix)]
                return self._page(chosen, query, url.path)
            if m := re.fullmatch(r"assets/([^/]+)/(info/)?", rest):
                asset = next((a for a in assets.values() if a.asset_id == m[1]), None)
                if asset is None:
                    return self._json({"detail": "Not found."}, 404)
                if m[2]:
                    return self._json({**asset.listing(), "metadata": asset.metadata(archive.url)})
                return self._json(asset.metadata(archive.url))
            return self._json({"detail": "Not found."}, 404)

        def _json(self, body: object, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _page(self, items: list, query: dict[str, str], path: str) -> None:
            size = int(query.get("page_size", archive.page_size))
            page = int(query.get("page", 1))
            chunk = items[(page - 1) * size: page * size]

            def link(n: int) -> str:
                return f"{archive.url}{path}?{urlencode({**query, 'page': n})}"

            self._json({"count": len(items), "next": link(page + 1) if page * size < len(items) else None,
                        "previous": link(page - 1) if page > 1 else None, "results": chunk})

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _blob(self, asset: Asset, head: bool) -> None:
            data = asset.data
            if asset.asset_id in archive.corrupt:
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            if asset.asset_id in archive.truncate:
                data = data[:archive.truncate[asset.asset_id]]
            start, stop = 0, len(data) - 1
            if rng := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or ""):
                start = int(rng[1])
                stop = min(int(rng[2]), stop) if rng[2] else stop
            body = data[start:stop + 1]
            self.send_response(206 if self.headers.get("Range") else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            if self.headers.get("Range"):
                self.send_header("Content-Range", f"bytes {start}-{stop}/{len(data)}")
            self.end_headers()
            if head:
                return
            if archive.cut.get(asset.asset_id, 0) > 0:  # a dropped connection halfway through the body
                archive.cut[asset.asset_id] -= 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler
