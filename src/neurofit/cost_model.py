"""How long a run takes: the config's jobs, their measured unit costs, scheduled on the job slots (README "Cost model").

Every job pays a fixed start besides its work: Snakemake's own handling of it and a fresh interpreter
(``dispatch``, the same for every job) and the imports of its stage (``start[stage]``: torch for the
network stages, xarray and scipy for a fit, matplotlib for a figure). CPU seconds of a run (``M``
models trained ``E_i`` epochs with ``L_i`` layers each, ``D`` datasets of which ``D_sim`` simulated,
``K`` metrics, ``n_other`` other jobs)::

    simulate  = D_sim x (t_simulate + start_simulate + dispatch)
    train     = sum_i (t_train + E_i t_epoch) + M (start_train + dispatch)
    features  = D x sum_i L_i x (t_features + start_features + dispatch)
    fit       = D x K x sum_i L_i x (t_fit + start_fit + dispatch)       (all regions in one job)
    other     = n_other x (t_other + start_other + dispatch)            data, ceilings, tables, figures, report

Wall time is not CPU / cores: the jobs form a DAG whose head is one long job (the simulator), and a
training job holds 2 cores for its whole wall time whether it keeps them busy or not. :func:`wall_seconds`
therefore schedules the DAG (:func:`run_jobs`) as Snakemake does: ready jobs by priority (the
simulator first), each started as soon as enough slots (cores x nodes) are free::

    simulate -> manifest -> stimuli -> features (after the model's train) -> fit -> tables -> figures
                         -> responses -> ceiling ------------------------------------^
    train (the simulator's reference model after simulate; others at once)

A GPU (:class:`GpuTerms`) divides each network or fit stage's work by that stage's speed-up and adds the
CUDA start (context creation) to every job of those stages; SLURM adds a queue wait to each job (its
latency, not CPU); ``scheduler`` (Snakemake building the DAG) is paid once, before any job.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

STAGES = ("simulate", "train", "features", "fit", "other")
# What each stage's ``other`` jobs are in the DAG: per dataset, four data jobs (manifest, stimuli,
# responses, ceiling); one tables job after every fit; the rest (figures, comparisons, pages) after it.
DATA_JOBS_PER_DATASET = 4
SIMULATE_PRIORITY = 50  # workflow/rules/data.smk: the simulator heads the critical path


@dataclass(frozen=True)
class UnitCosts:
    """Measured seconds of one unit of work (see the module docstring); CPU seconds unless said."""

    epoch: float  # one training epoch of one model
    train: float  # a train job besides its epochs (task images, evaluation, saving)
    features: float  # one layer's features of one dataset's stimuli
    fit: float  # one fit job (one layer x all regions), each metric
    other: float = 0.0  # the work of every other job
    simulate: float = 0.0  # one simulated dataset (the simulator trains its hidden network)
    dispatch: float = 0.0  # every job: Snakemake's handling of it and a fresh interpreter (no imports)
    start: Mapping[str, float] = field(default_factory=dict)  # a job's imports, by stage (missing: 0)
    train_threads: int = 2  # cores a training job holds (workflow/rules/models.smk `threads`)
    train_parallelism: float = 1.0  # CPU seconds per wall second of a training job (1 .. train_threads)

    def job_start(self, stage: str) -> float:
        """The fixed CPU seconds of one job of ``stage``: dispatch and its imports."""
        return self.dispatch + self.start.get(stage, 0.0)


GPU_STAGES = ("train", "features", "fit")  # the stages whose jobs run on a GPU when they see one


@dataclass(frozen=True)
class GpuTerms:
    """What one GPU per job changes, by stage (``benchmarks/bench_gpu.py`` measures them): the work of a
    train, features or fit job divided by that stage's speed-up (the CPU job's wall seconds over the GPU
    job's), and ``start`` seconds added to each of those jobs (torch's CUDA context: a GPU job pays it on
    top of its imports). Without them a run is the CPU's (:data:`NO_GPU`)."""

    train: float = 1.0
    features: float = 1.0
    fit: float = 1.0
    start: float = 0.0

    def __post_init__(self) -> None:
        for stage in GPU_STAGES:
            if getattr(self, stage) <= 0:
                raise ValueError(f"GPU speed-up of {stage} must be > 0; got {getattr(self, stage)}")
        if self.start < 0:
            raise ValueError(f"CUDA start must be >= 0 s; got {self.start}")

    def work(self, stage: str, seconds: float) -> float:
        """A job's work on the GPU (stages without a GPU term keep their CPU seconds)."""
        return seconds / getattr(self, stage) if stage in GPU_STAGES else seconds

    def job_start(self, stage: str) -> float:
        return self.start if stage in GPU_STAGES else 0.0


NO_GPU = GpuTerms()


@dataclass(frozen=True)
class RunShape:
    """What the config asks for: epochs per model (0 for a model that is not trained), layers per
    model, datasets (``simulated`` of them simulated), metrics, the number of jobs of every other rule,
    and which models load the simulator's weights (their train job waits on it; default none)."""

    epochs: tuple[int, ...]
    layers: tuple[int, ...]
    datasets: int
    metrics: int
    other_jobs: int
    simulated: int = 0
    reference: tuple[bool, ...] = ()

    @property
    def jobs(self) -> dict[str, int]:
        model_layers = sum(self.layers)
        return {"simulate": self.simulated, "train": len(self.epochs), "features": self.datasets * model_layers,
                "fit": self.datasets * self.metrics * model_layers, "other": self.other_jobs}


def cpu_seconds(shape: RunShape, unit: UnitCosts) -> dict[str, float]:
    """CPU seconds per stage (job starts included) and their ``total``."""
    jobs = shape.jobs
    work = {"simulate": jobs["simulate"] * unit.simulate,
            "train": sum(unit.train + e * unit.epoch for e in shape.epochs),
            "features": jobs["features"] * unit.features, "fit": jobs["fit"] * unit.fit,
            "other": jobs["other"] * unit.other}
    out = {stage: work[stage] + jobs[stage] * unit.job_start(stage) for stage in STAGES}
    out["total"] = sum(out[stage] for stage in STAGES)
    return out


@dataclass(frozen=True)
class Job:
    """One job of the DAG: its wall seconds when it has its cores, the cores it holds, what it waits on."""

    name: str
    seconds: float
    threads: int = 1
    needs: tuple[str, ...] = ()
    priority: int = 0


def run_jobs(jobs: list[Job], slots: int) -> float:
    """Wall seconds to run ``jobs`` on ``slots`` cores: whenever a job ends, the ready jobs (all they
    need done) start by priority, then in list order, each as soon as its threads fit in the free
    slots (a 2-thread job waits for 2; smaller jobs may pass it), as Snakemake's scheduler does."""
    by_name = {job.name: job for job in jobs}
    missing = sorted({n for job in jobs for n in job.needs} - set(by_name))
    if missing:
        raise ValueError(f"jobs need unknown jobs {missing}")
    order = {job.name: i for i, job in enumerate(jobs)}
    waiting = {job.name: set(job.needs) for job in jobs}
    ready = [job.name for job in jobs if not job.needs]
    running: list[tuple[float, str]] = []
    now, free = 0.0, slots
    while ready or running:
        ready.sort(key=lambda n: (-by_name[n].priority, order[n]))
        for name in list(ready):
            threads = min(by_name[name].threads, slots)
            if threads <= free:
                ready.remove(name)
                free -= threads
                heapq.heappush(running, (now + by_name[name].seconds, name))
        if not running:
            raise ValueError(f"jobs {sorted(ready)} can never start (a cycle?)")
        now, done = heapq.heappop(running)
        free += min(by_name[done].threads, slots)
        for name, needs in waiting.items():
            if done in needs:
                needs.discard(done)
                if not needs:
                    ready.append(name)
    return now


def pipeline_jobs(shape: RunShape, unit: UnitCosts, cores: int = 2, gpu: GpuTerms = NO_GPU,
                  queue_wait: float = 0.0) -> list[Job]:
    """The run's DAG (see the module docstring) with each job's wall seconds on this hardware."""
    if shape.simulated > shape.datasets:
        raise ValueError(f"{shape.simulated} simulated datasets of {shape.datasets}")
    train_threads = min(unit.train_threads, cores)
    parallel = min(max(unit.train_parallelism, 1.0), train_threads)

    def seconds(stage: str, work: float, per_core: float = 1.0) -> float:
        return queue_wait + unit.job_start(stage) + gpu.job_start(stage) + gpu.work(stage, work) / per_core

    jobs: list[Job] = []
    datasets = [f"d{d}" for d in range(shape.datasets)]
    for d, name in enumerate(datasets):
        head: tuple[str, ...] = ()
        if d < shape.simulated:
            jobs.append(Job(f"simulate {name}", seconds("simulate", unit.simulate), priority=SIMULATE_PRIORITY))
            head = (f"simulate {name}",)
        jobs.append(Job(f"manifest {name}", seconds("other", unit.other), needs=head))
        jobs.append(Job(f"stimuli {name}", seconds("other", unit.other), needs=(f"manifest {name}",)))
        jobs.append(Job(f"responses {name}", seconds("other", unit.other), needs=(f"manifest {name}",)))
        jobs.append(Job(f"ceiling {name}", seconds("other", unit.other), needs=(f"responses {name}",)))
    reference = shape.reference or (False,) * len(shape.epochs)
    fits = []
    for m, (epochs, layers) in enumerate(zip(shape.epochs, shape.layers, strict=True)):
        # the simulator's reference model loads the first simulated dataset's hidden network
        needs = ("simulate d0",) if reference[m] and shape.simulated else ()
        work = unit.train + epochs * unit.epoch
        # imports run on one core; the epochs and evaluation on `parallel` of the job's cores; a job that
        # only evaluates holds one core (config.train_threads)
        threads = train_threads if epochs else 1
        jobs.append(Job(f"train m{m}", seconds("train", work, min(parallel, threads)), threads, needs))
        for name in datasets:
            for layer in range(layers):
                feature = f"features {name} m{m} l{layer}"
                jobs.append(Job(feature, seconds("features", unit.features),
                                needs=(f"train m{m}", f"stimuli {name}")))
                for k in range(shape.metrics):
                    fits.append(f"fit {name} k{k} m{m} l{layer}")
                    jobs.append(Job(fits[-1], seconds("fit", unit.fit),
                                    needs=(feature, f"responses {name}")))
    jobs.append(Job("tables", seconds("other", unit.other),
                    needs=(*fits, *(f"ceiling {name}" for name in datasets))))
    report = shape.other_jobs - DATA_JOBS_PER_DATASET * shape.datasets - 1
    jobs += [Job(f"report {i}", seconds("other", unit.other), needs=("tables",)) for i in range(max(report, 0))]
    return jobs


def wall_seconds(shape: RunShape, unit: UnitCosts, cores: int = 2, nodes: int = 1, gpu: GpuTerms = NO_GPU,
                 queue_wait: float = 0.0, scheduler: float = 0.0) -> float:
    """Wall seconds on ``nodes`` machines of ``cores`` cores each (1 node: a local ``-c cores`` run):
    the DAG of :func:`pipeline_jobs` scheduled on ``cores x nodes`` slots (:func:`run_jobs`), after
    ``scheduler`` seconds of Snakemake building it; ``gpu``: the GPU terms of every train, features and fit
    job, each as if it had the GPU to itself (SLURM gives each job its own; jobs that share a laptop's one
    GPU at the same time are not modelled); ``queue_wait`` delays every job (SLURM)."""
    if cores < 1 or nodes < 1:
        raise ValueError(f"cores ({cores}) and nodes ({nodes}) must be >= 1")
    return scheduler + run_jobs(pipeline_jobs(shape, unit, cores, gpu, queue_wait), cores * nodes)
