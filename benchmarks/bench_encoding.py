"""Per-neuroid-alpha ridge: neurofit against the tools people use, same data, same alphas, same folds.

One outer split (90% train / 10% test, as one Brain-Score split); on the training stimuli each
method chooses alphas from logspace(-2, 6, 17) by 5-fold CV (shuffled KFold, the same folds for all
that accept folds), refits, and predicts the test stimuli. neurofit runs as the pipeline does
(:meth:`RidgeCV.cross_validated`, ``--dtype``). Printed per size: time (CPU seconds of the process with
``--threads 1`` on CPU, so a shared machine's load counts less; else wall; best of ``--repeats``, peers
interleaved), peak memory of traced allocations (numpy; CUDA: the torch
allocator's peak), ratio of each peer's time to neurofit's, the largest difference in held-out r
per neuroid from neurofit's, and the time neurofit's FLOP count would take at this machine's
measured GEMM rate (the bound).

Peers:
- sklearn RidgeCV(alpha_per_target=True): efficient leave-one-out (it allows no other CV with per-target alphas);
- sklearn GridSearchCV(Ridge): the same folds, but one alpha for all neuroids (multi-output MSE);
- himalaya RidgeCV (solver svd) on its numpy and torch backends, same folds, per-target alphas;
- himalaya KernelRidgeCV (linear kernel, eigenvalues solver: its fastest when stimuli < features).

    python benchmarks/bench_encoding.py --quick            # small sizes, a minute
    python benchmarks/bench_encoding.py                    # the issue's sizes (long on 2 cores)
    python benchmarks/bench_encoding.py --device cuda      # neurofit and himalaya on the GPU
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeCV as SkRidgeCV
from sklearn.model_selection import GridSearchCV, KFold

from neurofit.encoding.regression import RidgeCV
from neurofit.encoding.ridge import DEFAULT_ALPHAS, pearson_columns

FULL = [(500, 2048, 200), (2000, 4096, 1000), (5000, 512, 2000), (1000, 25088, 300)]
QUICK = [(300, 1024, 100), (800, 256, 300), (300, 6000, 100)]
FOLDS, TRAIN, SEED = 5, 0.9, 0


def make_data(n: int, p: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features with a decaying spectrum (like network activations) and neuroids of varied
    signal-to-noise, so that the best alpha differs between neuroids."""
    rng = np.random.default_rng(seed)
    rank = min(n, p, 256)
    x = (rng.normal(size=(n, rank)) * (np.arange(1, rank + 1) ** -0.7)) @ rng.normal(size=(rank, p))
    x += 0.05 * rng.normal(size=(n, p))
    w = rng.normal(size=(p, t)) / np.sqrt(p)
    signal = x @ w
    snr = np.logspace(-1.5, 1, t)
    y = signal / signal.std(0) * np.sqrt(snr) + rng.normal(size=(n, t))
    return x, y


def gemm_rate(device: str, dtype: str, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best of 3 square GEMMs, in FLOP/s (``clock``: CPU seconds on CPU with one thread)."""
    size = 2048
    if device == "cuda":
        import torch

        a = torch.randn(size, size, device="cuda", dtype=getattr(torch, dtype))
        best = np.inf
        for _ in range(5):
            torch.cuda.synchronize()
            start = time.perf_counter()
            a @ a
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    else:
        a = np.random.default_rng(0).normal(size=(size, size)).astype(dtype)
        best = np.inf
        for _ in range(3):
            start = clock()
            a @ a
            best = min(best, clock() - start)
    return 2 * size**3 / best


def gemm_dtype(dtype: str) -> str:
    return "float32" if dtype == "mixed" else dtype


def eigh_flops(k: int) -> float:
    # LAPACK syevd with vectors: tridiagonalisation 4/3 k^3 + back-transformation 2 k^3 + divide and
    # conquer ~ 2/3 k^3 (little deflation)
    return 4.0 * k**3


def neurofit_flops(n_all: int, p: int, t: int, n_alpha: int) -> float:
    """FLOPs of :func:`ridge_cv` as implemented, for one outer split (the refit counted as one
    eigendecomposition; the mixed refit's Cholesky per distinct alpha costs about as much for 12)."""
    n = int(TRAIN * n_all)
    m = n_all - n
    total = 2.0 * n_all * n_all * p if min(n - n // FOLDS, n) <= p else 0.0  # the one Gram of all stimuli
    fits = [(n - n // FOLDS, n // FOLDS, n_alpha)] * FOLDS + [(n, m, 0)]
    if n - n // FOLDS > p:  # primal folds downdate the outer moments X^T X, X^T Y
        total += 2.0 * n * p * p + 2.0 * n * p * t
    for n1, n2, a in fits:
        if n1 <= p:  # dual: eigh of the centred Gram
            k = n1
            total += eigh_flops(k) + 2.0 * n2 * n1 * k + 2.0 * n1 * k * t
        else:  # primal: covariance (a downdate for folds), eigh, projections
            k = p
            rows = n2 if a else n1
            total += 2.0 * rows * p * p + eigh_flops(p) + 2.0 * n2 * p * p + 2.0 * rows * p * t + 2.0 * p * p * t
        if a:
            total += 2.0 * k * n2 * t  # basis^T yv
            total += 2.0 * (k * k * n2 + a * k * k * t) if k < n2 else 2.0 * a * n2 * k * t  # prediction norms
            total += 4.0 * a * k * t  # cross terms
        else:
            total += 2.0 * m * k * t  # test predictions
    return total


@dataclass
class Result:
    name: str
    seconds: float
    peak_mb: float
    r: np.ndarray


def cpu_clock(args: argparse.Namespace) -> Callable[[], float]:
    """CPU seconds of this process with one thread on CPU (a shared machine's load then counts less
    than in wall time), else wall time."""
    return time.process_time if args.threads == 1 and args.device == "cpu" else time.perf_counter


def measure(fn: Callable[[], np.ndarray], device: str, clock: Callable[[], float], trace: bool = False
            ) -> tuple[float, float, np.ndarray]:
    """Seconds on ``clock``, peak memory in MB (NaN unless ``trace``), the prediction. The time is taken with
    tracing off: tracemalloc hooks every allocation (about 10 ms of neurofit's 70 ms solve at (500, 2048, 200),
    less of a peer's, whose allocations are fewer and larger); with ``trace`` the peak comes from a second call."""
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    start = clock()
    prediction = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = clock() - start
    peak = float("nan")
    if trace:
        del prediction
        gc.collect()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        tracemalloc.start()
        prediction = fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        if device == "cuda":
            torch.cuda.synchronize()
            peak += torch.cuda.max_memory_allocated() / 2**20
    return seconds, peak, prediction


def methods(x, y, train, test, folds, alphas, device, dtype, peers, peer_dtype="float32"):
    xt, yt = x[train], y[train]

    def neurofit(backend: str) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            # the pipeline's own entry point and settings (RidgeCV: float32 search, float64 refit when mixed)
            model = RidgeCV(alphas, FOLDS, backend=backend, dtype=dtype, device="cuda" if device == "cuda" else "cpu")
            return model.cross_validated(x, y, [(train, test)], SEED)[0].prediction
        return run

    def sk_ridgecv() -> np.ndarray:
        return SkRidgeCV(alphas=alphas, alpha_per_target=True).fit(xt, yt).predict(x[test])

    def sk_grid() -> np.ndarray:
        search = GridSearchCV(Ridge(), {"alpha": alphas}, cv=folds, scoring="neg_mean_squared_error")
        return search.fit(xt, yt).predict(x[test])

    def himalaya(kind: str, backend: str) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            from himalaya.backend import set_backend
            from himalaya.kernel_ridge import KernelRidgeCV
            from himalaya.ridge import RidgeCV as HimRidgeCV

            b = set_backend(backend, on_error="raise")
            cls = HimRidgeCV if kind == "ridge" else KernelRidgeCV
            model = cls(alphas=alphas, cv=folds, fit_intercept=True)
            model.fit(b.asarray(xt.astype(peer_dtype)), b.asarray(yt.astype(peer_dtype)))
            return np.asarray(b.to_numpy(model.predict(b.asarray(x[test].astype(peer_dtype)))))
        return run

    torch_backend = "torch_cuda" if device == "cuda" else "torch"
    candidates = {
        "neurofit": neurofit("torch" if device == "cuda" else "numpy"),
        "neurofit-torch-cpu": neurofit("torch"),
        "sklearn RidgeCV(LOO)": sk_ridgecv,
        "himalaya RidgeCV numpy": himalaya("ridge", "numpy"),
        f"himalaya RidgeCV {torch_backend}": himalaya("ridge", torch_backend),
        "himalaya KernelRidgeCV numpy": himalaya("kernel", "numpy"),
        f"himalaya KernelRidgeCV {torch_backend}": himalaya("kernel", torch_backend),
        "sklearn GridSearchCV(Ridge)": sk_grid,
    }
    if device == "cuda":
        candidates.pop("neurofit-torch-cpu")
    return {name: fn for name, fn in candidates.items() if name == "neurofit" or any(p in name for p in peers)}


def run_size(n: int, p: int, t: int, args: argparse.Namespace, rate: float) -> None:
    x, y = make_data(n, p, t)
    x = x.astype(np.float32 if args.dtype in ("mixed", "float32") else np.float64)  # features are stored float32
    split = np.random.default_rng(1).permutation(n)
    train, test = np.sort(split[: int(TRAIN * n)]), np.sort(split[int(TRAIN * n):])
    folds = list(KFold(FOLDS, shuffle=True, random_state=SEED).split(train))
    alphas = DEFAULT_ALPHAS
    todo = methods(x, y, train, test, folds, alphas, args.device, args.dtype, args.peers, args.peer_dtype)
    results: dict[str, Result] = {}
    for _ in range(args.repeats):  # interleaved: every method once per round, best time kept
        for name, fn in todo.items():
            if name in results and results[name].seconds > args.slow:
                continue  # a slow peer is timed once
            first = name not in results  # the peak once per method, in a call of its own
            seconds, peak, prediction = measure(fn, args.device, cpu_clock(args), trace=first)
            r = pearson_columns(np.asarray(prediction, dtype=np.float64), y[test].astype(np.float64))
            if first or seconds < results[name].seconds:
                results[name] = Result(name, seconds, peak if first else results[name].peak_mb, r)
    ours = results["neurofit"]
    # re-measured: a shared machine's load drifts
    rate = max(rate, gemm_rate(args.device, gemm_dtype(args.dtype), cpu_clock(args)))
    bound = neurofit_flops(n, p, t, len(alphas)) / rate
    print(f"\n(stimuli, features, neuroids) = ({n}, {p}, {t}); neurofit {args.dtype}, peers {args.peer_dtype}; "
          f"device {args.device}; {'CPU' if cpu_clock(args) is time.process_time else 'wall'} seconds; "
          f"GEMM {rate / 1e9:.1f} GFLOP/s; bound of neurofit's {neurofit_flops(n, p, t, len(alphas)) / 1e9:.0f} GFLOP: "
          f"{bound:.3f} s (neurofit at {ours.seconds / bound:.2f}x the bound)")
    print(f"  {'method':<34}{'time s':>9}{'peak MB':>10}{'time/neurofit':>15}{'max |dr|':>11}{'median r':>10}")
    for res in sorted(results.values(), key=lambda r: r.seconds):
        traced = args.device == "cuda" or "torch" not in res.name  # tracemalloc does not see torch's CPU allocator
        peak = f"{res.peak_mb:>10.1f}" if traced else f"{'n/a':>10}"
        print(f"  {res.name:<34}{res.seconds:>9.3f}{peak}{res.seconds / ours.seconds:>15.2f}"
              f"{np.abs(res.r - ours.r).max():>11.2e}{np.median(res.r):>10.4f}")
    peers = [r for name, r in results.items() if not name.startswith("neurofit") and "GridSearch" not in name]
    if peers:
        fastest = min(peers, key=lambda r: r.seconds)
        print(f"  fastest per-target peer: {fastest.name}, {fastest.seconds / ours.seconds:.2f}x neurofit's time")


def pipeline(args: argparse.Namespace) -> None:
    """The pipeline's own fit path, as the fit job runs it: features read from a netCDF file, every
    region of a dataset in one job (:func:`neurofit.encoding.fit.fit_groups`), 10 splits, 1000
    bootstrap draws and permutations. Against one job per region (what the pipeline ran before),
    with the share of bootstrap + permutation resampling and the peak of traced memory (numpy)
    relative to the feature matrix as stored (float32)."""
    import tempfile

    import xarray as xr

    from neurofit.encoding import fit as fit_module
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.settings import EncodingSettings

    n, p, t, regions = (int(v) for v in args.pipeline.split(","))
    x, y = make_data(n, p, t)
    x = x.astype(np.float32)
    ids = np.array([f"im{i:05d}" for i in range(n)])
    region = np.array([f"R{j * regions // t}" for j in range(t)])
    responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={
        "stimulus_id": ("stimulus", ids), "region": ("neuroid", region), "unit_id": ("neuroid", np.arange(t))})
    settings = EncodingSettings.from_config({"bootstrap": {"n": 1000}, "permutations": {"n": 1000}, "backend": "numpy",
                                             "dtype": args.dtype})
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/features.nc"
        xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)},
                     name="features").to_netcdf(path, engine="h5netcdf")
        del x

        def job(names: list[str], metric: str = "ridge") -> dict:
            features = LayerFeatures.from_xarray(xr.load_dataset(path, engine="h5netcdf"), source=path)
            return fit_module.fit_groups(metric, features, responses, {r: region == r for r in names}, settings)

        names = sorted(set(region))
        # CPU seconds (one thread): the shared machine's load does not count
        cpu: dict[str, list[float]] = {"regions": [], "pooled": [], "per_region": [], "resampling": []}
        peak = 0
        for _ in range(args.repeats):  # interleaved, best of repeats
            gc.collect()
            tracemalloc.start()
            with timed_calls([(fit_module, "_split_resamples")]) as spent:  # the job's own resampling calls
                start = time.process_time()
                job(names)
                cpu["regions"].append(time.process_time() - start)
            cpu["resampling"].append(spent["_split_resamples"])
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            start = time.process_time()
            fit_module.fit_groups("ridge", LayerFeatures.from_xarray(xr.load_dataset(path, engine="h5netcdf")),
                                  responses, None, settings)
            cpu["pooled"].append(time.process_time() - start)
            start = time.process_time()
            for name in names:
                job([name])
            cpu["per_region"].append(time.process_time() - start)
        feature_bytes = n * p * 4
        every, pooled, per_region = (min(cpu[k]) for k in ("regions", "pooled", "per_region"))
        best = int(np.argmin(cpu["regions"]))  # the resampling of that same run
        resample_time = cpu["resampling"][best]
        print(f"\npipeline fit job (ridge, {args.dtype}): {n} stimuli x {p} features (float32 file, "
              f"{feature_bytes / 2**20:.1f} MB), {t} neuroids in {regions} regions, 10 splits, 1000 boot + 1000 perm; "
              "CPU seconds, one thread")
        print(f"  one job, all neuroids as one population: {pooled:8.2f} s")
        print(f"  one job, all {regions} regions (the pipeline): {every:8.2f} s = {every / pooled:.2f}x the pooled job")
        print(f"  one job per region (before):           {per_region:8.2f} s = "
              f"{per_region / pooled:.2f}x the pooled job")
        print(f"  bootstrap + permutation resampling of all regions, timed inside that job: {resample_time:.2f} s = "
              f"{100 * resample_time / every:.1f}% of the job")
        print(f"  peak traced memory of the job (file read included): {peak / 2**20:.1f} MB = "
              f"{peak / feature_bytes:.2f}x the feature matrix (Gram matrix {n * n * 8 / 2**20:.1f} MB)")
        similarity_share(fit_module, path, responses, {r: region == r for r in names}, settings)


@contextlib.contextmanager
def timed_calls(pieces: list[tuple[object, str]]):
    """CPU seconds spent in each ``owner.attribute`` callable while the block runs (wrapped in place)."""
    spent = {name: 0.0 for _, name in pieces}
    originals = [(owner, name, getattr(owner, name)) for owner, name in pieces]

    def timer(original, name):
        def timed(*a, **k):
            start = time.process_time()
            try:
                return original(*a, **k)
            finally:
                spent[name] += time.process_time() - start
        return timed

    for owner, name, original in originals:
        setattr(owner, name, timer(original, name))
    try:
        yield spent
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def similarity_share(fit_module, path: str, responses, groups: dict, settings) -> None:
    """The rsa and cka fit jobs (all regions, features read from the file) and the share of their
    time spent in bootstrap + permutation resampling (:mod:`neurofit.encoding.resampling`, timed
    inside the job), CPU seconds with one thread; where the resampling's time goes (its parts, timed
    inside it), and the floor of its neuroid draws: one sort of each draw's pairs, and (both metrics)
    one GEMM of every draw's multiplicities with the per-pair products, per region and split."""
    import xarray as xr

    from neurofit.encoding import resampling
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.splits import stimulus_splits

    parts = {"rsa": [(resampling, "_permuted_pair_sums"), (resampling, "_neuroid_draw_rdms"),
                     (resampling, "_row_orders"), (resampling._StimulusBlock, "cross")],
             "cka": [(resampling, "_permuted_pair_sums"), (resampling._CkaGroup, "both_block")]}
    labels = {"_permuted_pair_sums": "permutations' gathers", "_neuroid_draw_rdms": "neuroid draws' RDMs",
              "_row_orders": "their sorts", "cross": "rank cross sums", "both_block": "stimulus-and-neuroid draws"}
    for metric in ("rsa", "cka"):
        name = f"{metric}_resamples"
        with timed_calls([(fit_module, name), *parts[metric]]) as spent:
            start = time.process_time()
            fit_module.fit_groups(metric, LayerFeatures.from_xarray(xr.load_dataset(path, engine="h5netcdf")),
                                  responses, groups, settings)
            job = time.process_time() - start
        print(f"  {metric} job (all regions): {job:8.2f} s; bootstrap + permutation resampling {spent[name]:.2f} s = "
              f"{100 * spent[name] / job:.1f}% of the job; of it: " + ", ".join(
                  f"{labels[part]} {spent[part]:.2f} s" for _, part in parts[metric]))
    split = settings.splits
    splits = stimulus_splits(responses.sizes["stimulus"], split.preset, split.n_splits, split.train_size, split.seed)
    m = len(splits[0][1])  # test stimuli per split
    pairs = m * (m - 1) // 2
    rng = np.random.default_rng(0)
    sizes = [int(mask.sum()) for mask in groups.values()]
    values = rng.uniform(0, 2, (settings.bootstrap.n, pairs))
    gemm = sort = 0.0
    for size in sizes:
        counts = rng.integers(0, 3, (settings.bootstrap.n, size)).astype(float)
        products = rng.normal(size=(pairs, size))
        start = time.process_time()
        counts @ products.T
        gemm += time.process_time() - start
        start = time.process_time()
        np.sort(values, axis=1)
        sort += time.process_time() - start
    n_splits = split.n_splits
    print(f"  floor of the neuroid draws, all regions and splits: one GEMM (draws x neuroids) @ (neuroids x {pairs} "
          f"pairs) {gemm * n_splits:.2f} s, one np.sort of the draws' pairs (rsa) {sort * n_splits:.2f} s")


def memory(args: argparse.Namespace) -> None:
    """Peak traced memory (numpy's allocations) of one ridge fit job (3 regions, 2 splits, 100 draws: the
    peak does not grow with the splits; the draws' arrays grow with the draws and the test stimuli, about 4 MB
    each for 1000 draws of 500 stimuli) on features held as stored (float32), relative to the feature
    matrix: the job's own allocations on top of the held features, and the same less one
    min(n, p)^2 float64 matrix (the dual's Gram matrix or the primal's covariance, which the issue allows).
    The responses (float64, in the features' stimulus order) are held by the caller before the job, like the
    features, and read in place (no aligned or shifted copy): not in the peak; their size relative to the
    features is printed beside it ("responses x"), as what the job must hold once."""
    import xarray as xr

    from neurofit.encoding.fit import fit_groups
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.settings import EncodingSettings

    print("\nfit job memory (ridge, 3 regions): peak of traced allocations on top of the held float32 features")
    print(f"  {'stimuli':>8}{'features':>9}{'neuroids':>9}{'dtype':>8}{'features MB':>12}{'peak MB':>9}"
          f"{'x features':>11}{'less Gram/cov':>14}{'total x':>9}{'responses x':>12}")
    for n, p, t in args.memory:
        x, y = make_data(n, p, t)
        x = x.astype(np.float32)
        ids = np.array([f"im{i:05d}" for i in range(n)])
        region = np.array([f"R{j * 3 // t}" for j in range(t)])
        responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={
            "stimulus_id": ("stimulus", ids), "region": ("neuroid", region)})
        layer = LayerFeatures.from_xarray(xr.DataArray(x, dims=("stimulus", "feature"),
                                                       coords={"stimulus_id": ("stimulus", ids)}))
        for dtype in ("mixed", "float64"):
            settings = EncodingSettings.from_config({"splits": {"n_splits": 2}, "bootstrap": {"n": 100},
                                                     "permutations": {"n": 100}, "backend": "numpy", "dtype": dtype})
            gc.collect()
            tracemalloc.start()
            fit_groups("ridge", layer, responses, {r: region == r for r in sorted(set(region))}, settings)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            allowed = min(n, p) ** 2 * 8
            print(f"  {n:>8}{p:>9}{t:>9}{dtype:>8}{x.nbytes / 2**20:>12.2f}{peak / 2**20:>9.2f}{peak / x.nbytes:>11.2f}"
                  f"{(peak - allowed) / x.nbytes:>14.2f}{1 + peak / x.nbytes:>9.2f}{y.nbytes / x.nbytes:>12.2f}")


def wide_one(method: str, n: int, p: int, k: int, n_fit: int) -> None:
    """One wide-layer reduction in this (fresh) process: a synthetic generator of float32 batches
    stands in for the network; prints time, traced peak and the process's peak RSS."""
    import resource

    from neurofit.features import reduce_batches

    batch = 64
    rng = np.random.default_rng(0)

    def batches(count: int):
        for start in range(0, count, batch):
            yield start, rng.standard_normal((min(batch, count - start), p), dtype=np.float32)

    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    fit = batches(n_fit) if method == "pca_images" else None
    values, info = reduce_batches(batches(n), n, method, k, 0, fit, n_fit)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"  {method:<14}{n:>7}{p:>9}{seconds:>9.1f}{peak / 2**20:>12.0f}{rss:>11.0f}{n * p * 4 / 2**30:>12.1f}"
          f"   -> {values.shape}")


def wide(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    print("\nwide layers (features job's reduction, synthetic float32 batches of 64 stimuli, each in a fresh process):")
    print(f"  {'method':<14}{'stimuli':>7}{'features':>9}{'time s':>9}{'traced MB':>12}{'RSS MB':>11}"
          f"{'layer GB':>12}")
    for method, n, p in args.wide:
        subprocess.run([sys.executable, __file__, "--wide-one", method, str(n), str(p)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["mixed", "float64", "float32"], default="mixed",
                        help="neurofit's precision (default: the pipeline's, float32 search + float64 refit)")
    parser.add_argument("--peer-dtype", choices=["float64", "float32"], default="float32",
                        help="the peers' precision (default float32: their fastest)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/torch threads for every method (default: the libraries' own)")
    parser.add_argument("--slow", type=float, default=20.0, help="methods slower than this (s) are timed once")
    parser.add_argument("--sizes", nargs="*", default=None, help="n,p,t triples, e.g. 500,2048,200")
    parser.add_argument("--peers", nargs="*", default=["sklearn", "himalaya", "neurofit-torch"],
                        help="substrings of peer names to run")
    parser.add_argument("--pipeline", default=None, metavar="N,P,T,REGIONS",
                        help="also time the pipeline's fit job, e.g. 640,8192,300,3 (--sizes '' for only this)")
    parser.add_argument("--memory", nargs="*", default=None, metavar="N,P,T",
                        help="peak memory of a ridge fit job per shape, e.g. 640,128,50 640,512,50 5000,512,50")
    parser.add_argument("--wide", nargs="*", default=None, metavar="METHOD,N,P",
                        help="wide-layer reductions, e.g. sparse_random,5000,802816 gram,5000,50176")
    parser.add_argument("--wide-one", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wide_one:
        method, n, p = args.wide_one
        wide_one(method, int(n), int(p), k=1024 if method == "sparse_random" else 500, n_fit=1000)
        return 0
    if args.wide is not None:
        args.wide = [(m, int(n), int(p)) for m, n, p in (w.split(",") for w in args.wide)]
    sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes if s] if args.sizes is not None else (
        QUICK if args.quick else FULL)
    limits = contextlib.nullcontext()
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        limits = threadpool_limits(args.threads)
    with limits:
        rate = gemm_rate(args.device, gemm_dtype(args.dtype), cpu_clock(args))
        print(f"measured GEMM rate ({args.device}, {args.dtype}, 2048^3, threads {args.threads or 'default'}): "
              f"{rate / 1e9:.1f} GFLOP/s")
        for n, p, t in sizes:
            run_size(n, p, t, args, rate)
        if args.pipeline:
            pipeline(args)
        if args.memory:
            args.memory = [tuple(int(v) for v in m.split(",")) for m in args.memory]
            memory(args)
    if args.wide:
        wide(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
