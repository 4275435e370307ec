"""A threaded HTTP server on loopback that serves one file's bytes with range requests (what remfile asks for),
calling ``before_range(header)`` before it answers each range request (to stall it, or to run a collection)
and ``before_length()`` before it answers a request without a range (a client's probe of the length)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_ranges(data: bytes, before_range: Callable[[str], None] | None = None,
                 before_length: Callable[[], None] | None = None) -> tuple[ThreadingHTTPServer, str]:
    """(the running server, the file's URL); ``server.shutdown(); server.server_close()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if rng and before_range is not None:
                before_range(rng[0])
            if not rng and before_length is not None:
                before_length()
            last = len(data) - 1
            start, stop = (int(rng[1]), min(int(rng[2] or last), last)) if rng else (0, last)
            body = data[start:stop + 1]
            try:
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up on this answer (a stalled one), or probed the length only
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/file.nwb"
