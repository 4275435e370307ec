"""neurofit's Brain-Score presets against Brain-Score itself, on the same synthetic data.

Checks that ``fit_metric("pls", ...)`` under the ``brainscore`` split preset (the default settings) gives
Brain-Score's ``CrossRegressedCorrelation(pls_regression(), pearsonr_correlation())`` score, and that
``split_half_ceiling`` gives ``InternalConsistency()``, to 1e-6, at each size, and prints both libraries'
wall and CPU times (fastest of ``--repeats`` runs, the three interleaved so that a change in the shared
machine's load hits all of them; BLAS on ``--threads``):

- brain-score: one PLS fit per split (10), Pearson r per neuroid, median, mean;
- neurofit, the same work: the same, on neurofit's batched NIPALS (``KernelPLS(train_score=False)``);
- neurofit, the whole fit job (``fit_metric``): also 5 inner-CV fits per split (the train score that
  nested layer choice uses) and 1000 bootstrap + 1000 permutation resamples.

The default sizes are small (200 x 120, 40 neuroids), narrow (640 x 100: feature form), wide (320 x
1,024: kernel form) and many neuroids (200 x 120, 150). A real layer's size (Brain-Score takes ~10 min):

    python benchmarks/brainscore_parity.py --sizes 640,8192,50 --repeats 1

Brain-Score is not a dependency of neurofit; install it aside, without its dependencies:

    pip install --no-deps --target /tmp/bs brainscore-vision==2.4.2 brainscore-core brainscore-brainio result_caching
    python benchmarks/brainscore_parity.py --brainscore-path /tmp/bs

Modules Brain-Score imports only for downloads and its database (boto3, netCDF4, ...) are stubbed.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import sys
import time
import types
import warnings

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

SIZES = ("200,120,40", "640,100,50", "320,1024,50", "200,120,150")  # small, narrow, wide, many neuroids
UNUSED = ("boto3", "botocore", "peewee", "fire", "psycopg2", "pybtex", "sqlalchemy", "google", "git", "netCDF4")


class _Stub(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        return self


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in UNUSED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Stub(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def _timed(call, timings: list[tuple[float, float]]):
    wall, cpu = time.perf_counter(), time.process_time()
    out = call()
    timings.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def _fastest(timings: list[tuple[float, float]]) -> str:
    return f"{min(w for w, _ in timings):6.2f} s wall {min(c for _, c in timings):6.2f} s CPU"


def compare(n: int, p: int, t: int, repeats: int) -> bool:
    """One data size: PLS score and ceiling of both libraries; fastest of ``repeats`` interleaved runs."""
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.metrics.internal_consistency.ceiling import InternalConsistency
    from brainscore_vision.metrics.regression_correlation.metric import (
        CrossRegressedCorrelation,
        pearsonr_correlation,
        pls_regression,
    )

    from neurofit.encoding.ceiling import split_half_ceiling
    from neurofit.encoding.fit import fit_metric

    rng = np.random.default_rng(0)
    reps = 5
    ids = np.array([f"im{i:04d}" for i in rng.permutation(n)])  # ids not in row order
    objects = np.array([f"obj{i % 8}" for i in range(n)])
    x = rng.normal(size=(n, p))
    truth = x @ rng.normal(size=(p, t)) / np.sqrt(p)
    trials = truth[None] + rng.normal(scale=1.5, size=(reps, n, t))  # (repeat, stimulus, neuroid)
    order = np.argsort(ids)  # Brain-Score's splits run over the target assembly as given: sorted by stimulus_id

    neuroid = {"neuroid_id": ("neuroid", [f"n{j}" for j in range(t)]), "region": ("neuroid", ["IT"] * t)}
    source = NeuroidAssembly(x[order], dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", ids[order]), "object_name": ("presentation", objects[order]),
        "neuroid_id": ("neuroid", [f"f{j}" for j in range(p)]), "layer": ("neuroid", ["fc"] * p)})
    target = NeuroidAssembly(trials.mean(0)[order], dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", ids[order]), "object_name": ("presentation", objects[order]), **neuroid})
    metric = CrossRegressedCorrelation(regression=pls_regression(), correlation=pearsonr_correlation(),
                                       crossvalidation_kwargs={"stratification_coord": "object_name"})
    features = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
    responses = xr.DataArray(trials.mean(0), dims=("stimulus", "neuroid"),
                             coords={"stimulus_id": ("stimulus", ids), "region": ("neuroid", ["IT"] * t)})
    stratify = ("object_name", dict(zip(ids, objects, strict=True)))

    bs_times: list[tuple[float, float]] = []
    same_times: list[tuple[float, float]] = []
    job_times: list[tuple[float, float]] = []
    for _ in range(repeats):  # interleaved, so a change in the shared machine's load hits all three
        bs_score = float(_timed(lambda: metric(source, target), bs_times).values)
        same_score = _timed(lambda: _test_score_only(features, responses, stratify), same_times)
        fit = _timed(lambda: fit_metric("pls", features, responses, stratify=stratify), job_times)
    nf_score = float(fit["test_score"].mean())
    print(f"\n{n} stimuli x {p} features, {t} neuroids; PLSRegression(25, scale=False), 10 stratified splits; "
          f"fastest of {repeats}; neurofit's solver: {fit.attrs['pls_solver']}")
    print(f"  pls score   brain-score {bs_score:.10f}  neurofit {nf_score:.10f}  |diff| {abs(bs_score - nf_score):.2e}"
          f"  (test-score-only path: |diff| {abs(bs_score - same_score):.2e})")
    print(f"  brain-score                            {_fastest(bs_times)}  one PLS fit per split")
    print(f"  neurofit, the same work                {_fastest(same_times)}  one PLS fit per split  "
          f"{min(bs_times)[0] / min(same_times)[0]:5.2f}x faster")
    print(f"  neurofit, the whole fit job            {_fastest(job_times)}  + 5 inner-CV fits per split (train "
          f"score), 1000 bootstrap + 1000 permutations  {min(bs_times)[0] / min(job_times)[0]:5.2f}x faster")

    flat_ids = np.tile(ids, reps)
    repetition = np.repeat(np.arange(reps), n)
    assembly = NeuroidAssembly(trials.reshape(reps * n, t), dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", flat_ids), "object_name": ("presentation", np.tile(objects, reps)),
        "repetition": ("presentation", repetition), **neuroid})
    bs_ceiling = float(InternalConsistency()(assembly).values)
    nf_ceiling = float(np.median(split_half_ceiling(trials.reshape(reps * n, t), flat_ids, repetition), axis=1).mean())
    print(f"  ceiling     brain-score {bs_ceiling:.10f}  neurofit {nf_ceiling:.10f}  "
          f"|diff| {abs(bs_ceiling - nf_ceiling):.2e}")
    return abs(bs_score - nf_score) < 1e-6 and abs(bs_score - same_score) < 1e-6 and abs(bs_ceiling - nf_ceiling) < 1e-6


def _test_score_only(features: xr.DataArray, responses: xr.DataArray, stratify: tuple[str, dict]) -> float:
    """What Brain-Score computes, the neurofit way: the brainscore splits, one kernel-NIPALS PLS fit per
    split on its training stimuli (no inner CV, no resamples), Pearson r per neuroid on the test stimuli,
    median over neuroids, mean over splits."""
    from neurofit.encoding.backend import get_ops
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.pls import KernelPLS
    from neurofit.encoding.ridge import pearson_columns
    from neurofit.encoding.splits import stimulus_splits

    layer = LayerFeatures.from_xarray(features)
    y, ids = layer.align(responses)
    splits = stimulus_splits(len(ids), "brainscore", stratify=np.asarray([stratify[1][s] for s in ids]))
    fits = KernelPLS(25, layer.n_features).cross_validated(layer.design(get_ops("numpy", "float64")), y, splits,
                                                           inner_folds=5, seed=1, train_score=False)
    return float(np.mean([np.median(pearson_columns(prediction, y[test]))
                          for (prediction, _), (_, test) in zip(fits, splits, strict=True)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brainscore-path", default="/tmp/bs")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), metavar="STIMULI,FEATURES,NEUROIDS")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads, both libraries")
    args = parser.parse_args()
    sys.meta_path.insert(0, _StubFinder())
    sys.path.insert(0, args.brainscore_path)
    warnings.simplefilter("ignore")  # xarray's FutureWarnings from Brain-Score, both solvers' ConvergenceWarnings
    with threadpool_limits(args.threads):
        ok = [compare(*(int(v) for v in size.split(",")), args.repeats) for size in args.sizes]
    print("PASS" if all(ok) else "FAIL")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
