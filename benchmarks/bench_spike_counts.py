"""Spike counts per (presentation, unit) in a window after onset: neurofit against its peers.

Same spike trains (Poisson, sorted), same onsets, same half-open window [onset + 70 ms, onset +
170 ms) with neurofit's edge convention (a spike within 1 ns before an edge is on it, see
``EDGE_TOLERANCE_S``), so every peer's edges are moved 1 ns earlier; counts must agree exactly.
Without that shift, random continuous spike times land within 1 ns of an edge about once in 10^7
spikes; real spike times sit on a sampling grid far coarser than 1 ns. Printed per size: wall
time (best of ``--repeats``) and each peer's time over neurofit's.

Peers:
- boolean masks in numpy (the direct computation the tests compare with), chunked by presentation;
- ``np.histogram`` per unit over the window edges (windows that do not overlap);
- pynapple ``TsGroup.count(ep=IntervalSet)`` (if installed: ``pip install pynapple``).

Both np.histogram and pynapple close their last bin on the right; a dummy last bin keeps every
real window half-open.

    python benchmarks/bench_spike_counts.py --quick
    python benchmarks/bench_spike_counts.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from neurofit.neural.responses import EDGE_TOLERANCE_S, spike_counts

FULL = [(100, 2000, 10.0), (500, 4000, 10.0), (1000, 8000, 5.0)]  # units, presentations, mean rate (Hz)
QUICK = [(50, 500, 10.0), (200, 2000, 10.0)]
START, STOP = 0.070, 0.170
LO, HI = START - EDGE_TOLERANCE_S, STOP - EDGE_TOLERANCE_S  # the peers' window edges


def make(units: int, presentations: int, rate: float, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    onsets = 1.0 + np.arange(presentations) * 0.25  # 250 ms apart: windows do not overlap
    duration = onsets[-1] + 1.0
    trains = [np.sort(rng.uniform(0, duration, rng.poisson(rate * duration))) for _ in range(units)]
    return trains, onsets


def masks(trains: list[np.ndarray], onsets: np.ndarray) -> np.ndarray:
    out = np.empty((len(onsets), len(trains)), dtype=np.int64)
    for j, t in enumerate(trains):
        for lo in range(0, len(onsets), 256):  # chunks keep the (onset, spike) mask in memory
            o = onsets[lo:lo + 256, None]
            out[lo:lo + 256, j] = ((t >= o + LO) & (t < o + HI)).sum(1)
    return out


def histogram(trains: list[np.ndarray], onsets: np.ndarray) -> np.ndarray:
    edges = np.append(np.stack([onsets + LO, onsets + HI], axis=1).ravel(), onsets[-1] + 10.0)
    return np.stack([np.histogram(t, edges)[0][::2] for t in trains], axis=1)


def pynapple_peer() -> Callable[[list[np.ndarray], np.ndarray], np.ndarray] | None:
    try:
        import pynapple as nap
    except ImportError:
        return None

    def count(trains: list[np.ndarray], onsets: np.ndarray) -> np.ndarray:
        group = nap.TsGroup({j: nap.Ts(t) for j, t in enumerate(trains)})
        windows = nap.IntervalSet(start=np.append(onsets + LO, onsets[-1] + 10.0),
                                  end=np.append(onsets + HI, onsets[-1] + 11.0))
        return np.asarray(group.count(ep=windows))[:-1]

    return count


def best_time(fn: Callable[..., np.ndarray], args: tuple, repeats: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    peers: dict[str, Callable] = {"numpy masks": masks, "np.histogram": histogram}
    if (nap := pynapple_peer()) is not None:
        peers["pynapple"] = nap
    print(f"{'units':>6} {'pres':>6} {'method':<14} {'seconds':>9} {'x neurofit':>10}")
    for units, presentations, rate in QUICK if args.quick else FULL:
        trains, onsets = make(units, presentations, rate)
        ours, reference = best_time(spike_counts, (trains, onsets, START, STOP), args.repeats)
        print(f"{units:>6} {presentations:>6} {'neurofit':<14} {ours:>9.4f} {1.0:>10.1f}")
        for name, fn in peers.items():
            seconds, counts = best_time(fn, (trains, onsets), args.repeats)
            if not np.array_equal(counts, reference):
                raise SystemExit(f"{name} disagrees with neurofit on {int((counts != reference).sum())} counts")
            print(f"{units:>6} {presentations:>6} {name:<14} {seconds:>9.4f} {seconds / ours:>10.1f}")


if __name__ == "__main__":
    main()
