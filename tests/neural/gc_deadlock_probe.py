"""Run as a script: ``python gc_deadlock_probe.py <nwb file> plain|neurofit``. Streams the file from an HTTP
server on a thread of this process, while cyclic garbage holds an h5py object and the server thread runs a
collection whenever automatic collection is on (as any thread may). ``plain`` (h5py on remfile) hangs;
``neurofit`` (:func:`neurofit.neural.nwb.open_nwb`) prints the number of units and ``done``."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import h5py
from range_server import serve_ranges


def collect_if_enabled(_range: str) -> None:
    if gc.isenabled():  # a range read comes while h5py holds its lock on the reading thread
        gc.collect()


def main(path: Path, mode: str) -> None:
    _, url = serve_ranges(path.read_bytes(), collect_if_enabled)
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
