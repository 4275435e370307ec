"""Streaming an NWB file over HTTP: it cannot deadlock with a collection on another thread (h5py's global lock
is held while it reads through the file object, and freeing h5py garbage needs it), a stalled range request
or length probe times out and is retried instead of holding the job, and a missing file is named at once."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from range_server import serve_ranges

from neurofit.neural import nwb
from neurofit.neural.nwb import NWBContentError, cyclic_gc_paused, open_nwb

PROBE = Path(__file__).with_name("gc_deadlock_probe.py")


def _probe(path: Path, mode: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROBE), str(path), mode], capture_output=True, text=True,
                          timeout=timeout)


def _real_nwb(shared_data: Path) -> Path:
    return next((shared_data / "dandi" / "000006").rglob("*.nwb"))


def test_streamed_reads_survive_a_collection_on_the_server_thread(shared_data):
    path = _real_nwb(shared_data)
    with pytest.raises(subprocess.TimeoutExpired):  # the probe reproduces the hang without the pause
        _probe(path, "plain", timeout=8)
    done = _probe(path, "neurofit", timeout=60)
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


@pytest.mark.parametrize("stalled", ["range", "length"])
def test_a_stalled_request_times_out_and_is_retried(shared_data, monkeypatch, stalled):
    """A stalled range request (remfile's) or length probe (neurofit's: remfile's own has no timeout) is
    abandoned after ``STREAM_TIMEOUT_S`` and asked again, instead of holding the job."""
    asked: list[str] = []

    def stall_the_first(header: str = "length") -> None:
        asked.append(header)
        if len(asked) == 1:
            time.sleep(5.0)

    hook = {"before_range": stall_the_first} if stalled == "range" else {"before_length": stall_the_first}
    httpd, url = serve_ranges(_real_nwb(shared_data).read_bytes(), **hook)
    monkeypatch.setattr(nwb, "STREAM_TIMEOUT_S", 0.5)
    try:
        start = time.monotonic()
        with open_nwb(url) as nwbfile:
            assert len(nwbfile.units) > 0
        elapsed = time.monotonic() - start
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert asked[0] == asked[1]  # the stalled request, asked again
    assert stalled == "range" or len(asked) == 2  # the length is probed by neurofit alone
    assert elapsed < 5.0  # not waited out


@pytest.mark.parametrize(("answer", "message"), [
    ("missing", r"gone\.nwb: HTTP 404"),
    ("no length", r"gone\.nwb: the server sends no Content-Length"),
])
def test_a_file_that_cannot_be_streamed_is_named_at_once_without_retries(answer, message):
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # an answer without a length ends with the connection

        def do_GET(self) -> None:
            asked.append(self.path)
            if answer == "missing":
                self.send_error(404)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\x89HDF\r\n")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/gone.nwb"
    try:
        start = time.monotonic()
        with pytest.raises(NWBContentError, match=message), open_nwb(url):
            pass
        assert time.monotonic() - start < 2.0
        assert asked == ["/gone.nwb"]
    finally:
        httpd.shutdown()
        httpd.server_close()
