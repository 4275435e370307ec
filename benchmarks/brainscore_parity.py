"""neurofit's Brain-Score presets against Brain-Score itself, on the same synthetic data.

Checks that ``fit_metric("pls", preset="brainscore")`` gives Brain-Score's
``CrossRegressedCorrelation(pls_regression(), pearsonr_correlation())`` score, and that
``split_half_ceiling`` gives ``InternalConsistency()``, to 1e-6; prints both libraries' wall time
for the PLS score (neurofit's includes what its fit job adds: the inner-CV train score and the
bootstrap and permutation resamples).

    python benchmarks/brainscore_parity.py --stimuli 640 --features 8192 --neuroids 50   # a real layer's size

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

import numpy as np
import xarray as xr

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brainscore-path", default="/tmp/bs")
    parser.add_argument("--stimuli", type=int, default=200)
    parser.add_argument("--features", type=int, default=120)
    parser.add_argument("--neuroids", type=int, default=40)
    args = parser.parse_args()
    sys.meta_path.insert(0, _StubFinder())
    sys.path.insert(0, args.brainscore_path)
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
    n, p, t, reps = args.stimuli, args.features, args.neuroids, 5
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
    start = time.perf_counter()
    bs_score = float(metric(source, target).values)
    bs_seconds = time.perf_counter() - start

    features = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
    responses = xr.DataArray(trials.mean(0), dims=("stimulus", "neuroid"),
                             coords={"stimulus_id": ("stimulus", ids), "region": ("neuroid", ["IT"] * t)})
    stratify = ("object_name", dict(zip(ids, objects, strict=True)))
    start = time.perf_counter()
    fit = fit_metric("pls", features, responses, stratify=stratify)  # the fit job's defaults: 1000 boot + 1000 perm
    nf_seconds = time.perf_counter() - start
    nf_score = float(fit["test_score"].mean())
    print(f"data: {n} stimuli x {p} features, {t} neuroids; PLSRegression(25, scale=False), 10 stratified splits")
    print(f"pls score       brain-score {bs_score:.10f}  neurofit {nf_score:.10f}  "
          f"|diff| {abs(bs_score - nf_score):.2e}")
    print(f"pls time        brain-score {bs_seconds:.2f} s (one fit per split)  neurofit {nf_seconds:.2f} s "
          f"(one fit + 5 inner-CV fits per split for the train score, 1000 bootstrap + 1000 permutations; "
          f"solver: {fit.attrs['pls_solver']})  = {bs_seconds / nf_seconds:.2f}x faster")

    flat_ids = np.tile(ids, reps)
    repetition = np.repeat(np.arange(reps), n)
    assembly = NeuroidAssembly(trials.reshape(reps * n, t), dims=["presentation", "neuroid"], coords={
        "stimulus_id": ("presentation", flat_ids), "object_name": ("presentation", np.tile(objects, reps)),
        "repetition": ("presentation", repetition), **neuroid})
    bs_ceiling = float(InternalConsistency()(assembly).values)
    nf_ceiling = float(np.median(split_half_ceiling(trials.reshape(reps * n, t), flat_ids, repetition), axis=1).mean())
    print(f"ceiling         brain-score {bs_ceiling:.10f}  neurofit {nf_ceiling:.10f}  "
          f"|diff| {abs(bs_ceiling - nf_ceiling):.2e}")
    ok = abs(bs_score - nf_score) < 1e-6 and abs(bs_ceiling - nf_ceiling) < 1e-6
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
