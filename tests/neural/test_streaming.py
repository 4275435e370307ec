"""Streaming an NWB file over HTTP: it cannot deadlock with a collection on another thread (h5py's global lock
is held while it reads through the file object, and freeing h5py garbage needs it), and a stalled range
request times out and is retried instead of holding the job."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neurofit.neural import nwb
from neurofit.neural.nwb import cyclic_gc_paused, open_nwb

PROBE = Path(__file__).with_name("gc_deadlock_probe.py")


def _probe(nwb: Path, mode: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROBE), str(nwb), mode], capture_output=True, text=True,
                          timeout=timeout)


def test_streamed_reads_survive_a_collection_on_the_server_thread(shared_data):
    nwb = next((shared_data / "dandi" / "000006").rglob("*.nwb"))
    with pytest.raises(subprocess.TimeoutExpired):  # the probe reproduces the hang without the pause
        _probe(nwb, "plain", timeout=8)
    done = _probe(nwb, "neurofit", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "done" and int(done.stdout.split()[0]) > 0


def test_the_pause_nests_and_restores_the_collector_state():
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer file is still open
    assert gc.isenabled()
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("a failed read")
    assert gc.isenabled()


def _stalling_server(data: bytes, stall_s: float) -> tuple[ThreadingHTTPServer, list[str]]:
    """Serves ``data`` with range requests; the first range request waits ``stall_s`` before its answer."""
    ranges: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
            if rng:
                ranges.append(rng[0])
                if len(ranges) == 1:
                    time.sleep(stall_s)
            start, stop = (int(rng[1]), min(int(rng[2] or len(data) - 1), len(data) - 1)) if rng else (0, len(data) - 1)
            body = data[start:stop + 1]
            try:
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up on this request (the stall) or probed the length only
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, ranges


def test_a_stalled_range_request_times_out_and_is_retried(shared_data, monkeypatch):
    path = next((shared_data / "dandi" / "000006").rglob("*.nwb"))
    httpd, ranges = _stalling_server(path.read_bytes(), stall_s=5.0)
    monkeypatch.setattr(nwb, "STREAM_TIMEOUT_S", 0.5)
    try:
        start = time.monotonic()
        with open_nwb(f"http://127.0.0.1:{httpd.server_address[1]}/file.nwb") as nwbfile:
            assert len(nwbfile.units) > 0
        elapsed = time.monotonic() - start
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert ranges[0] == ranges[1]  # the stalled request, asked again
    assert elapsed < 5.0  # not waited out
