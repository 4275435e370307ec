"""Checks the cost model (``neurofit.cost_model``, README "Cost model") against a measured run.

1. plans the config's jobs (``snakemake -n``: jobs per rule; the time it takes is the scheduler's start);
2. measures the unit costs on this machine: Snakemake's cost per job (``dispatch``: the slope of its
   CPU seconds over a throwaway workflow of 2 and 12 empty script jobs, interpreter start included),
   each stage's imports (a fresh interpreter importing what the stage function imports, less a bare
   one), and in this process the simulator, one fit job per distinct layer size (synthetic responses
   of the config's stimuli, neuroids and regions; the config's encoding settings), one forward pass
   of the stimuli per model (a feature extraction), one training epoch per trained architecture and
   one evaluation-only train job (CPU and wall: a training job's use of its 2 cores). The other jobs'
   work (tables, figures, data files) needs the run's own files: ``--other-work`` (CPU s per job),
   printed as measured after the run;
3. predicts the run's CPU seconds per stage and its wall time on ``--cores`` (the DAG scheduled on
   the cores, ``neurofit.cost_model.wall_seconds``);
4. runs it (``snakemake -c N`` in a temporary directory, niced) and prints predicted against
   measured: wall time, the run's CPU seconds (Snakemake and every job, from the kernel) and each
   stage's CPU seconds from the rules' benchmark files (``results/benchmarks/<stage>/...tsv``, column
   ``cpu_time``: sampled every 0.5 s for 15 s, then every 30 s, so a job's last moments and most of a
   long job, the simulator's, go uncounted).

    python benchmarks/bench_cost_model.py                                # tests/e2e/tiny.yaml, -c 2
    python benchmarks/bench_cost_model.py --configfile config/config.yaml --cores 2
    python benchmarks/bench_cost_model.py --no-run                       # calibrate and predict only

Only simulated datasets can be predicted before the run (their stimulus and neuroid counts are in
the config). The machine is shared: the load during the run is printed with the numbers.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_OF_RULE = {"train": "train", "train_checkpoints": "train", "features": "features", "simulate": "simulate"}
# The neurofit.cli stage a rule runs, where its name is not the stage's (workflow/rules: `stage` param).
CLI_STAGE_OF_RULE = {"train_checkpoints": "train", "table_pages": "table_pages"}
# A throwaway workflow of `n` empty script jobs, with benchmark files as the pipeline's rules have.
EMPTY_WORKFLOW = """
N = {n}

rule all:
    input: expand("out/{i}.txt", i=range(N))

rule empty:
    output: "out/{i}.txt"
    benchmark: "bench/{i}.tsv"
    script: "empty.py"
"""


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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interpreter_cpu(code: str, repeats: int = 3) -> float:
    """CPU seconds of a fresh interpreter running ``code`` (best of ``repeats``)."""
    best = np.inf
    for _ in range(repeats):
        before = children_cpu()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        best = min(best, children_cpu() - before)
    return float(best)


def stage_imports(stage: str) -> str:
    """The import statements the ``neurofit.cli`` stage function (and the cli helpers it calls) runs."""
    from neurofit.cache import PACKAGE_DIR, stage_parts

    used, _ = stage_parts(stage)
    tree = ast.parse((PACKAGE_DIR / "cli.py").read_text())
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    lines = [ast.unparse(item) for name in used if name in defs for item in ast.walk(defs[name])
             if isinstance(item, ast.Import | ast.ImportFrom)]
    return "\n".join(dict.fromkeys(lines))


def stage_starts(stages: dict[str, int]) -> tuple[dict[str, float], float]:
    """CPU seconds of each stage's imports in a fresh script job (beyond ``snakemake.script`` and
    ``neurofit.cli``, which every job imports: part of the dispatch), and their mean over ``stages``
    (``{cli stage: jobs}``, the other rules of the run) as the ``other`` stage's."""
    base = "import snakemake.script, neurofit.cli"
    bare = interpreter_cpu(base)
    starts = {stage: max(interpreter_cpu(f"{base}\n{stage_imports(stage)}") - bare, 0.0)
              for stage in ("simulate", "train", "features", "fit", *stages)}
    other = sum(starts[s] * n for s, n in stages.items()) / max(1, sum(stages.values()))
    return starts, other


def dispatch_seconds(scratch: Path, sizes: tuple[int, int] = (2, 12)) -> float:
    """Snakemake's CPU seconds per script job, its interpreter's start and ``import neurofit.cli``
    included: the slope between throwaway workflows of ``sizes`` empty jobs."""
    spent = []
    for n in sizes:
        workdir = scratch / f"dispatch_{n}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "Snakefile").write_text(EMPTY_WORKFLOW.replace("{n}", str(n), 1))
        (workdir / "empty.py").write_text("import neurofit.cli\nPath = __import__('pathlib').Path\n"
                                          "Path(snakemake.output[0]).touch()  # noqa: F821\n")
        before = children_cpu()
        done = subprocess.run([sys.executable, "-m", "snakemake", "-c1", "--quiet"],
                              cwd=workdir, capture_output=True, text=True, env={**os.environ, "DANDI_NO_ET": "1"})
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        spent.append(children_cpu() - before)
    return (spent[1] - spent[0]) / (sizes[1] - sizes[0])


@contextlib.contextmanager
def timer(out: list[float], clock: Callable[[], float] = time.process_time):
    """Appends the seconds the block took on ``clock`` (default: this process's CPU seconds)."""
    start = clock()
    yield
    out.append(clock() - start)


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


def layer_sizes(config: dict, configfile: Path, model: str) -> list[tuple[int, str]]:
    """(features, output shape as the features file's attribute) of each of the model's configured layers
    (a random-weight forward pass)."""
    import json

    from neurofit import config as nf_config
    from neurofit.cli import describe_layers

    rows = json.loads(describe_layers(str(configfile), model, as_json=True))["layers"]
    wanted = nf_config.layers(config, model)
    sizes = {row["layer"]: (int(row["features"]), " ".join(map(str, row["output_shape"]))
                            if isinstance(row["output_shape"], list) else "") for row in rows}
    return [sizes[layer] for layer in wanted]


def fit_seconds(metric: str, stimuli: int, size: tuple[int, str], neuroids: int, regions: list[str],
                encoding: dict, clock: Callable[[], float] = time.process_time) -> float:
    """CPU seconds (or seconds on ``clock``) of one fit job (all regions) on synthetic features and responses
    of this size."""
    import xarray as xr

    from neurofit.encoding.fit import fit_groups
    from neurofit.encoding.layer import LayerFeatures
    from neurofit.encoding.settings import EncodingSettings

    features, output_shape = size
    rng = np.random.default_rng(0)
    x = rng.normal(size=(stimuli, features)).astype(np.float32)
    y = x[:, :min(features, 64)] @ rng.normal(size=(min(features, 64), neuroids)) + rng.normal(size=(stimuli, neuroids))
    ids = np.array([f"s{i:05d}" for i in range(stimuli)])
    region = np.array([regions[j * len(regions) // neuroids] for j in range(neuroids)])
    responses = xr.DataArray(y, dims=("stimulus", "neuroid"), coords={"stimulus_id": ("stimulus", ids),
                                                                      "region": ("neuroid", region)})
    layer = xr.DataArray(x, dims=("stimulus", "feature"), coords={"stimulus_id": ("stimulus", ids)},
                         attrs={"output_shape": output_shape} if output_shape else {})
    # as neurofit.cli.stage_fit reads the encoding settings
    settings = EncodingSettings.from_config({k: v for k, v in encoding.items() if k not in EncodingSettings.ELSEWHERE})
    spent: list[float] = []
    with timer(spent, clock):
        fit_groups(metric, LayerFeatures.from_xarray(layer), responses, {r: region == r for r in regions}, settings)
    return spent[0]


def forward_seconds(config: dict, model: str, stimuli: int, device: str = "cpu",
                    clock: Callable[[], float] = time.process_time) -> float:
    """CPU seconds (or seconds on ``clock``) of one forward pass of ``stimuli`` random images through the
    model on ``device``, in batches of 128 as the features stage runs them."""
    from neurofit import config as nf_config
    from neurofit.features import preprocess_for
    from neurofit.models.train import ModelSpec

    spec = ModelSpec.from_config(nf_config.model_settings(config, model))
    network = spec.build().eval().to(device)
    prep = preprocess_for(spec.architecture, spec.image_size, spec.features)
    images = np.random.default_rng(0).random((stimuli, prep.image_size, prep.image_size), dtype=np.float32)
    return batched_forward_seconds(network, prep, images, device, clock)


def batched_forward_seconds(network: Any, prep: Callable[[np.ndarray], Any], images: np.ndarray, device: str,
                            clock: Callable[[], float], batch: int = 128) -> float:
    """Seconds on ``clock`` of ``network`` over ``images`` (preprocessed per batch, moved to ``device``), after a
    first call (lazy initialisation, CUDA kernels' selection)."""
    import torch

    def synchronise() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.no_grad():
        network(prep(images[:2]).to(device))
        synchronise()
        spent: list[float] = []
        with timer(spent, clock):
            for start in range(0, len(images), batch):
                network(prep(images[start:start + batch]).to(device))
            synchronise()
    return spent[0]


def simulate_seconds(config: dict, name: str, tmp: Path) -> float:
    """CPU seconds of simulating the dataset (one thread, as its job)."""
    from neurofit.cli import stage_simulate
    from neurofit.simulate_defaults import simulation_settings

    spent: list[float] = []
    with timer(spent):
        settings = simulation_settings(config["datasets"][name].get("simulate") or {})
        stage_simulate(str(tmp / f"simulated_{name}"), settings)
    return spent[0]


def train_seconds(config: dict, model: str, epochs: int, tmp: Path) -> tuple[float, float]:
    """(CPU, wall) seconds of the model's train job with ``epochs`` epochs (0: evaluation only, untrained)."""
    from neurofit import config as nf_config
    from neurofit.cli import stage_train

    settings = dict(nf_config.training_settings(config, model))
    settings.update({"epochs": max(epochs, 1)} if epochs else {"objective": "untrained"})
    settings.pop("checkpoints", None)
    spent: list[float] = []
    start = time.perf_counter()
    with timer(spent):
        stage_train(settings, str(tmp / f"{model}_{epochs}.pt"), str(tmp / f"{model}_{epochs}.json"))
    return spent[0], time.perf_counter() - start


def calibrate(config: dict, configfile: Path, counts: dict[str, int], tmp: Path, other_work: float):
    """Unit costs on this machine and the run's shape (see the module docstring)."""
    from neurofit import config as nf_config
    from neurofit.cli import STAGES as CLI_STAGES
    from neurofit.cost_model import RunShape, UnitCosts

    dispatch = dispatch_seconds(tmp)
    other_rules = {rule: n for rule, n in counts.items() if stage_of(rule) == "other"}
    other_stages: dict[str, int] = {}
    for rule, n in other_rules.items():
        stage = CLI_STAGE_OF_RULE.get(rule, rule)
        if stage in CLI_STAGES:
            other_stages[stage] = other_stages.get(stage, 0) + n
    starts, other_start = stage_starts(other_stages)
    # the threads each job gets (Snakemake sets them from the rule's `threads`: 1, training 2); more BLAS or
    # torch threads than cores spin and inflate the CPU seconds of a loaded machine
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    limits = threadpool_limits(1)
    models = nf_config.scored_models(config)
    trained = set(nf_config.trained_models(config))
    datasets = sorted(config["datasets"])
    simulated = [d for d in datasets if config["datasets"][d]["source"] == "simulated"]
    metrics = list(config["encoding"]["metrics"])
    epochs, reference = [], []
    for model in models:
        settings = nf_config.model_settings(config, model)
        learns = model in trained and "weights" not in settings and settings.get("objective") != "untrained"
        epochs.append(int(settings.get("epochs", 2)) if learns else 0)
        reference.append(nf_config.reference_dataset(settings) is not None)
    sizes = {model: layer_sizes(config, configfile, model) for model in models}
    fits, extractions = [], []
    for name in datasets:
        stimuli, neuroids, regions = simulated_shape(config, name)
        for metric in metrics:
            # a first small fit: its imports are counted in the start
            fit_seconds(metric, stimuli, (16, "4 2 2"), neuroids, regions,
                        config["encoding"])
            by_size = {p: fit_seconds(metric, stimuli, p, neuroids, regions, config["encoding"])
                       for p in sorted({p for layer in sizes.values() for p in layer})}
            fits += [by_size[p] for layer in sizes.values() for p in layer]
        forward = {model: forward_seconds(config, model, stimuli) for model in models}
        extractions += [forward[model] for model in models for _ in sizes[model]]
    simulate = float(np.mean([simulate_seconds(config, name, tmp) for name in simulated])) if simulated else 0.0
    # the evaluation-only job of an untrained network, and one epoch of the first trained one (2 threads)
    limits.restore_original_limits()
    threadpool_limits(2)
    torch.set_num_threads(2)
    architectures = [m for m in models if "weights" not in nf_config.model_settings(config, m)]
    base, base_wall = train_seconds(config, architectures[0], 0, tmp) if architectures else (0.0, 0.0)
    first_trained = next((m for m, e in zip(models, epochs, strict=True) if e), None)
    one, one_wall = train_seconds(config, first_trained, 1, tmp) if first_trained else (base, base_wall)
    unit = UnitCosts(epoch=max(one - base, 0.0), train=base, features=float(np.mean(extractions)),
                     fit=float(np.mean(fits)), other=other_work, simulate=simulate, dispatch=dispatch,
                     start={**starts, "other": other_start}, train_parallelism=one / max(one_wall, 1e-9))
    shape = RunShape(epochs=tuple(epochs), layers=tuple(len(sizes[m]) for m in models), datasets=len(datasets),
                     metrics=len(metrics), other_jobs=sum(other_rules.values()), simulated=len(simulated),
                     reference=tuple(reference))
    return unit, shape


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
    parser.add_argument("--other-work", type=float, default=0.6,
                        help="CPU s of work per job of the other rules (data files, tables, figures) beyond its "
                             "imports; default 0.6, measured on the default config (README 'Cost model')")
    parser.add_argument("--gpu-terms", type=Path, default=None,
                        help="JSON written by bench_gpu.py --out: also predict the run with a GPU per job")
    args = parser.parse_args()
    from neurofit.cost_model import STAGES, GpuTerms, cpu_seconds, wall_seconds

    config = yaml.safe_load(args.configfile.read_text())
    with tempfile.TemporaryDirectory(prefix="bench_cost_model_") as scratch:
        workdir = args.keep or Path(scratch) / "run"
        workdir.mkdir(parents=True, exist_ok=True)
        counts, dag_seconds = plan(workdir, args.configfile.resolve())
        print(f"config {args.configfile}: {sum(counts.values())} jobs; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        unit, shape = calibrate(config, args.configfile, counts, Path(scratch), args.other_work)
        print("unit costs (CPU s, this machine): " + ", ".join(
            f"{k} {getattr(unit, k):.2f}" for k in ("dispatch", "simulate", "epoch", "train", "features", "fit",
                                                    "other")) +
            f"; training on {unit.train_parallelism:.2f} cores; DAG build (dry run) {dag_seconds:.1f} s")
        print("imports per job by stage (CPU s): " + ", ".join(f"{k} {v:.2f}" for k, v in unit.start.items()))
        predicted = cpu_seconds(shape, unit)
        wall = wall_seconds(shape, unit, cores=args.cores, scheduler=dag_seconds)
        print(f"predicted: {predicted['total']:.0f} CPU s, {wall:.0f} s wall on {args.cores} cores; "
              f"on 8 SLURM nodes of 2 cores (60 s queue per job): "
              f"{wall_seconds(shape, unit, cores=2, nodes=8, queue_wait=60, scheduler=dag_seconds):.0f} s")
        if args.gpu_terms:
            gpu = GpuTerms(**json.loads(args.gpu_terms.read_text())["gpu_terms"])
            local = wall_seconds(shape, unit, cores=args.cores, gpu=gpu, scheduler=dag_seconds)
            print(f"with a GPU ({gpu}): {local:.0f} s wall on {args.cores} cores; on 8 SLURM nodes of 2 cores with a "
                  f"GPU each: "
                  f"{wall_seconds(shape, unit, cores=2, nodes=8, gpu=gpu, queue_wait=60, scheduler=dag_seconds):.0f} s")
        if args.no_run:
            return 0
        loads: list[float] = []
        stop = threading.Event()

        def sample_load() -> None:  # the shared machine's load, every 5 s while the run lasts
            while not stop.wait(5.0):
                loads.append(os.getloadavg()[0])

        sampler = threading.Thread(target=sample_load, daemon=True)
        sampler.start()
        start, cpu_before = time.perf_counter(), children_cpu()
        done = snakemake(workdir, args.configfile.resolve(), "-c", str(args.cores), "--quiet")
        measured_wall, run_cpu = time.perf_counter() - start, children_cpu() - cpu_before
        stop.set()
        load = float(np.mean(loads)) if loads else os.getloadavg()[0]
        if done.returncode:
            print(done.stderr[-3000:])
            return 1
        measured = measured_stages(workdir / config.get("results", "results"))
        # with `load` runnable processes on the cores (the run's own included) a job gets cores/load of a core
        loaded = wall * max(1.0, load / (os.cpu_count() or 1))
        print(f"\nmeasured run: {measured_wall:.0f} s wall on -c {args.cores}, mean load {load:.1f} on "
              f"{os.cpu_count()} cores; predicted {wall:.0f} s unloaded = {wall / measured_wall:.2f}x measured, "
              f"{loaded:.0f} s at this load = {loaded / measured_wall:.2f}x")
        print(f"run CPU s (Snakemake and every job, from the kernel): {run_cpu:.0f}; predicted "
              f"{predicted['total'] + dag_seconds:.0f} (with the DAG build) = "
              f"{(predicted['total'] + dag_seconds) / run_cpu:.2f}x")
        print(f"{'stage':<10}{'jobs':>6}{'predicted CPU s':>17}{'measured CPU s':>16}{'measured wall s':>17}"
              f"{'ratio':>7}   (measured: the benchmark files, which miss Snakemake's own share)")
        for stage in STAGES:
            jobs, cpu, job_wall = measured.get(stage, (0, 0.0, 0.0))
            ratio = predicted[stage] / cpu if cpu else float("nan")
            print(f"{stage:<10}{jobs:>6}{predicted[stage]:>17.1f}{cpu:>16.1f}{job_wall:>17.1f}{ratio:>7.2f}")
        jobs, cpu, _ = measured.get("other", (0, 0.0, 0.0))
        if jobs:
            print(f"other jobs' work, measured: {cpu / jobs - unit.job_start('other'):.2f} CPU s per job "
                  f"(--other-work; this prediction used {unit.other:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
