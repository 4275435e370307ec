"""Checks the cost model (``neurofit.cost_model``, README "Cost model") against a measured run.

1. plans the config's jobs (``snakemake -n``: jobs per rule; the time it takes is the scheduler's start);
2. measures the unit costs on this machine with small calibration runs in this process: a script
   job's start (a fresh interpreter importing what a job imports), one fit job per distinct layer
   size (synthetic responses of the config's stimuli, neuroids and regions; the config's encoding
   settings), one forward pass of the stimuli per model (a feature extraction), one training epoch
   per trained architecture and one evaluation-only train job;
3. predicts the run's CPU seconds per stage and its wall time on ``--cores`` from the formula;
4. runs it (``snakemake -c N`` in a temporary directory, niced) and prints predicted against
   measured: wall time, and each stage's CPU seconds from the rules' benchmark files
   (``results/benchmarks/<stage>/...tsv``, column ``cpu_time``).

    python benchmarks/bench_cost_model.py                                # tests/e2e/tiny.yaml, -c 2
    python benchmarks/bench_cost_model.py --configfile config/config.yaml --cores 2
    python benchmarks/bench_cost_model.py --no-run                       # calibrate and predict only

Only simulated datasets can be predicted before the run (their stimulus and neuroid counts are in
the config). The machine is shared: the load during the run is printed with the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_OF_RULE = {"train": "train", "train_checkpoints": "train", "features": "features"}
JOB_IMPORTS = "import snakemake.script, neurofit.cli, torch, xarray, matplotlib.pyplot"


def snakemake(workdir: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = ["nice", "-n", "10", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(configfile), *extra]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "DANDI_NO_ET": "1"})


def stage_of(rule: str) -> str:
    return "fit" if rule.startswith("fit_") else STAGE_OF_RULE.get(rule, "other")


def plan(workdir: Path, configfile: Path) -> tuple[dict[str, int], float]:
    """Jobs per rule of a dry run, and the dry run's wall seconds (the DAG build every run pays)."""
    start = time.perf_counter()
    done = snakemake(workdir, configfile, "-n", "--quiet", "rules")
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    counts = {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit() and line.split()[0] not in ("total", "all")}
    return counts, time.perf_counter() - start


def job_start() -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh interpreter importing what a script job imports (best of 3)."""
    best = (np.inf, np.inf)
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", JOB_IMPORTS], check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, (wall, cpu))
    return best


@contextlib.contextmanager
def cpu_timer(out: list[float]):
    start = time.process_time()
    yield
    out.append(time.process_time() - start)


def simulated_shape(config: dict, name: str) -> tuple[int, int, list[str]]:
    """(stimuli, neuroids over all regions, regions) of a simulated dataset, as the simulator makes it."""
    from neurofit import config as nf_config
    from neurofit.simulate_defaults import simulation_settings

    entry = config["datasets"][name]
    if entry.get("source") != "simulated":
        raise SystemExit(f"datasets.{name}: only simulated datasets can be predicted before their files exist")
    settings = simulation_settings(entry.get("simulate") or {})
    regions = nf_config.regions(config, name)
    return int(settings["n_stimuli"]), int(settings["units_per_region"]) * len(regions), regions


def layer_sizes(config: dict, configfile: Path, model: str) -> list[int]:
    """Features of each of the model's configured layers (a random-weight forward pass)."""
    import json

    from neurofit import config as nf_config
    from neurofit.cli import describe_layers

    rows = json.loads(describe_layers(str(configfile), model, as_json=True))["layers"]
    wanted = nf_config.layers(config, model)
    sizes = {row["layer"]: row["features"] for row in rows}
    return [int(sizes[layer]) for layer in wanted]


def fit_seconds(metric: str, stimuli: int, features: int, neuroids: int, regions: list[str], encoding: dict) -> float:
    """CPU seconds of one fit job (all regions) on synthetic features and responses of this size."""
    import xarray as xr

    from neurofit.encoding.fit import fit_groups
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.settings import EncodingSettings

    rng = np.random.default_rng(0)
    x = rng.normal(size=(stimuli, features)).astype(np.float32)
    y = x[:, :min(features, 64)] @ rng.normal(size=(min(features, 64), neuroids)) + rng.normal(size=(stimuli, neuroids))
    ids = np.array([f"s{i:05d}" for i in range(stimuli)])
    region = np.array([regions[j * len(regions) // neuroids] for j in range(neuroids)])
    responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={"stimulus_id": ("stimulus", ids),
                                                                      "region": ("neuroid", region)})
    layer = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)})
    # as neurofit.cli.stage_fit reads the encoding settings
    settings = EncodingSettings.from_config({k: v for k, v in encoding.items() if k not in EncodingSettings.ELSEWHERE})
    spent: list[float] = []
    with cpu_timer(spent):
        fit_groups(metric, LayerFeatures.from_xarray(layer), responses, {r: region == r for r in regions}, settings)
    return spent[0]


def forward_seconds(config: dict, model: str, stimuli: int) -> float:
    """CPU seconds of one forward pass of ``stimuli`` random images through the model."""
    import torch

    from neurofit import config as nf_config
    from neurofit.features import preprocess_for
    from neurofit.models.train import ModelSpec

    spec = ModelSpec.from_config(nf_config.model_settings(config, model))
    network, prep = spec.build().eval(), preprocess_for(spec.architecture, spec.image_size, spec.features)
    images = np.random.default_rng(0).random((stimuli, prep.image_size, prep.image_size), dtype=np.float32)
    with torch.no_grad():
        network(prep(images[:2]))  # first call: lazy initialisation
    spent: list[float] = []
    with torch.no_grad(), cpu_timer(spent):
        for start in range(0, stimuli, 128):
            network(prep(images[start:start + 128]))
    return spent[0]


def train_seconds(config: dict, model: str, epochs: int, tmp: Path) -> float:
    """CPU seconds of the model's train job with ``epochs`` epochs (0: evaluation only, untrained)."""
    from neurofit import config as nf_config
    from neurofit.cli import stage_train

    settings = dict(nf_config.training_settings(config, model))
    settings.update({"epochs": max(epochs, 1)} if epochs else {"objective": "untrained"})
    settings.pop("checkpoints", None)
    spent: list[float] = []
    with cpu_timer(spent):
        stage_train(settings, str(tmp / f"{model}_{epochs}.pt"), str(tmp / f"{model}_{epochs}.json"))
    return spent[0]


def calibrate(config: dict, configfile: Path, counts: dict[str, int], tmp: Path):
    """Unit costs on this machine and the run's shape (see the module docstring)."""
    from neurofit import config as nf_config
    from neurofit.cost_model import RunShape, UnitCosts

    start_wall, start_cpu = job_start()
    # the threads each job gets (Snakemake sets them from the rule's `threads`: 1, training 2); more BLAS or
    # torch threads than cores spin and inflate the CPU seconds of a loaded machine
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    limits = threadpool_limits(1)
    models = nf_config.scored_models(config)
    trained = set(nf_config.trained_models(config))
    datasets = sorted(config["datasets"])
    metrics = list(config["encoding"]["metrics"])
    epochs = []
    for model in models:
        settings = nf_config.model_settings(config, model)
        learns = model in trained and "weights" not in settings and settings.get("objective") != "untrained"
        epochs.append(int(settings.get("epochs", 2)) if learns else 0)
    sizes = {model: layer_sizes(config, configfile, model) for model in models}
    fits, extractions = [], []
    for name in datasets:
        stimuli, neuroids, regions = simulated_shape(config, name)
        for metric in metrics:
            fit_seconds(metric, stimuli, 16, neuroids, regions, config["encoding"])  # imports: counted in the start
            by_size = {p: fit_seconds(metric, stimuli, p, neuroids, regions, config["encoding"])
                       for p in sorted({p for layer in sizes.values() for p in layer})}
            fits += [by_size[p] for layer in sizes.values() for p in layer]
        forward = {model: forward_seconds(config, model, stimuli) for model in models}
        extractions += [forward[model] for model in models for _ in sizes[model]]
    # the evaluation-only job of an untrained network, and one epoch of the first trained one (2 threads)
    limits.restore_original_limits()
    threadpool_limits(2)
    torch.set_num_threads(2)
    architectures = [m for m in models if "weights" not in nf_config.model_settings(config, m)]
    base = train_seconds(config, architectures[0], 0, tmp) if architectures else 0.0
    first_trained = next((m for m, e in zip(models, epochs, strict=True) if e), None)
    epoch = train_seconds(config, first_trained, 1, tmp) - base if first_trained else 0.0
    other = sum(n for rule, n in counts.items() if stage_of(rule) == "other")
    unit = UnitCosts(start=start_cpu, epoch=max(epoch, 0.0), train=base, features=float(np.mean(extractions)),
                     fit=float(np.mean(fits)))
    shape = RunShape(epochs=tuple(epochs), layers=tuple(len(sizes[m]) for m in models), datasets=len(datasets),
                     metrics=len(metrics), other_jobs=other)
    return unit, shape, start_wall


def measured_stages(results: Path) -> dict[str, tuple[int, float, float]]:
    """{stage: (jobs, CPU s, wall s)} summed over the benchmark files of a run."""
    out: dict[str, list[float]] = {}
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(results / "benchmarks").parts[0]
        with open(path) as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        stage = stage_of("fit_" if rule == "fit" else rule)
        totals = out.setdefault(stage, [0, 0.0, 0.0])
        totals[0] += 1
        totals[1] += float(row.get("cpu_time") or 0.0)
        totals[2] += float(row["s"])
    return {stage: (int(v[0]), v[1], v[2]) for stage, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", type=Path, default=REPO / "tests" / "e2e" / "tiny.yaml")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-run", action="store_true", help="calibrate and predict only")
    parser.add_argument("--keep", type=Path, default=None, help="run in this directory and keep it")
    args = parser.parse_args()
    from neurofit.cost_model import STAGES, cpu_seconds, wall_seconds

    config = yaml.safe_load(args.configfile.read_text())
    with tempfile.TemporaryDirectory(prefix="bench_cost_model_") as scratch:
        workdir = args.keep or Path(scratch) / "run"
        workdir.mkdir(parents=True, exist_ok=True)
        counts, dag_seconds = plan(workdir, args.configfile.resolve())
        print(f"config {args.configfile}: {sum(counts.values())} jobs; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        unit, shape, start_wall = calibrate(config, args.configfile, counts, Path(scratch))
        print("unit costs (CPU s, this machine): " + ", ".join(
            f"{k} {getattr(unit, k):.2f}" for k in ("start", "epoch", "train", "features", "fit")) +
            f"; job start wall {start_wall:.2f} s; DAG build (dry run) {dag_seconds:.1f} s")
        predicted = cpu_seconds(shape, unit)
        wall = wall_seconds(shape, unit, cores=args.cores, scheduler=dag_seconds)
        print(f"predicted: {predicted['total']:.0f} CPU s, {wall:.0f} s wall on {args.cores} cores; "
              f"on 8 SLURM nodes of 2 cores (60 s queue per stage): "
              f"{wall_seconds(shape, unit, cores=2, nodes=8, queue_wait=60, scheduler=dag_seconds):.0f} s")
        if args.no_run:
            return 0
        loads: list[float] = []
        stop = threading.Event()

        def sample_load() -> None:  # the shared machine's load, every 5 s while the run lasts
            while not stop.wait(5.0):
                loads.append(os.getloadavg()[0])

        sampler = threading.Thread(target=sample_load, daemon=True)
        sampler.start()
        start = time.perf_counter()
        done = snakemake(workdir, args.configfile.resolve(), "-c", str(args.cores), "--quiet")
        measured_wall = time.perf_counter() - start
        stop.set()
        load = float(np.mean(loads)) if loads else os.getloadavg()[0]
        if done.returncode:
            print(done.stderr[-3000:])
            return 1
        measured = measured_stages(workdir / config.get("results", "results"))
        # with `load` runnable processes on the cores (the run's own included) a job gets cores/load of a core
        loaded = wall * max(1.0, load / (os.cpu_count() or 1))
        print(f"\nmeasured run: {measured_wall:.0f} s wall on -c {args.cores}, mean load {load:.1f} on "
              f"{os.cpu_count()} cores; predicted {wall:.0f} s unloaded, {loaded:.0f} s at this load "
              f"= {loaded / measured_wall:.2f}x measured")
        print(f"{'stage':<10}{'jobs':>6}{'predicted CPU s':>17}{'measured CPU s':>16}{'measured wall s':>17}"
              f"{'ratio':>7}")
        for stage in STAGES:
            jobs, cpu, job_wall = measured.get(stage, (0, 0.0, 0.0))
            ratio = predicted[stage] / cpu if cpu else float("nan")
            print(f"{stage:<10}{jobs:>6}{predicted[stage]:>17.1f}{cpu:>16.1f}{job_wall:>17.1f}{ratio:>7.2f}")
        total = sum(v[1] for v in measured.values())
        print(f"{'total':<10}{sum(v[0] for v in measured.values()):>6}{predicted['total']:>17.1f}{total:>16.1f}"
              f"{sum(v[2] for v in measured.values()):>17.1f}{predicted['total'] / total:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
