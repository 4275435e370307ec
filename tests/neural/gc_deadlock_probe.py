"""Run as a script: ``python gc_deadlock_probe.py <nwb file> plain|neurofit``. Streams the file from an HTTP
server on a thread of this process, while cyclic garbage holds an h5py object and the server thread runs a
collection whenever automatic collection is on (as any thread may). ``plain`` (h5py on remfile) hangs;
``neurofit`` (:func:`neurofit.neural.nwb.open_nwb`) prints the number of units and ``done``."""

from __future__ import annotations

import contextlib
import gc
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py


def serve(data: bytes) -> str:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if rng and gc.isenabled():  # a range read comes while h5py holds its lock on the reading thread
                gc.collect()
            start, stop = (int(rng[1]), min(int(rng[2] or len(data) - 1), len(data) - 1)) if rng else (0, len(data) - 1)
            body = data[start:stop + 1]
            self.send_response(206 if rng else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # remfile closes its length probe without reading the body
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/file.nwb"


def main(path: Path, mode: str) -> None:
    url = serve(path.read_bytes())
    gc.set_threshold(0)  # no collection but the server thread's, so the garbage below waits for it
    held = h5py.File(path, "r")
    cycle: list = [held]
    cycle.append(cycle)
    del held, cycle
    if mode == "plain":
        import remfile

        with h5py.File(remfile.File(url), "r") as h5:
            print(len(h5["units"]["id"]))
    else:
        from neurofit.neural.nwb import open_nwb

        with open_nwb(url) as nwbfile:
            print(len(nwbfile.units))
    print("done")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
