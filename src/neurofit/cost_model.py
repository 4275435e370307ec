"""How long a run takes: the config's job counts times measured unit costs (README "Cost model").

CPU seconds of a run, by stage (``M`` models trained ``E_i`` epochs, ``L_i`` layers each, ``D`` datasets,
``K`` metrics, every job paying ``t_start`` to start its interpreter and imports)::

    train     = sum_i (t_train + E_i t_epoch)          one job per model (E_i = 0: untrained, loaded weights)
    features  = D x sum_i L_i x t_features             one job per dataset x model x layer
    fit       = D x K x sum_i L_i x t_fit              one job per dataset x metric x model x layer (all regions)
    other     = n_other x t_other                      data, ceilings, tables, figures, report
    start     = n_jobs x t_start

``t_features`` grows with the stimuli S (one forward pass of every stimulus), ``t_fit`` with S, the
layer's features P and the neuroids N over all regions (not with the number of regions: one job fits
them all). Wall time: the stages run one after another (data and training overlap), the jobs of a
stage spread over the job slots (cores x nodes; a training job takes 2 cores), a stage lasting at
least its longest job; a GPU divides the network and ridge stages by its speed-up; SLURM adds one
queue wait per stage.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGES = ("train", "features", "fit", "other")


@dataclass(frozen=True)
class UnitCosts:
    """Measured CPU seconds of one unit of work (see the module docstring)."""

    start: float  # a script job's start: interpreter, imports (per job)
    epoch: float  # one training epoch of one model
    train: float  # a train job besides its epochs (evaluation on held-out images, saving)
    features: float  # one layer's features of one dataset's stimuli
    fit: float  # one fit job (one layer x all regions), each metric
    other: float = 0.0  # the work of every other job, beyond its start


@dataclass(frozen=True)
class RunShape:
    """What the config asks for: epochs per model (0 for a model that is not trained), layers per
    model, datasets, metrics, and the number of jobs of every other rule."""

    epochs: tuple[int, ...]
    layers: tuple[int, ...]
    datasets: int
    metrics: int
    other_jobs: int

    @property
    def jobs(self) -> dict[str, int]:
        model_layers = sum(self.layers)
        return {"train": len(self.epochs), "features": self.datasets * model_layers,
                "fit": self.datasets * self.metrics * model_layers, "other": self.other_jobs}


def cpu_seconds(shape: RunShape, unit: UnitCosts) -> dict[str, float]:
    """CPU seconds per stage (job starts included) and their ``total``."""
    jobs = shape.jobs
    work = {"train": sum(unit.train + e * unit.epoch for e in shape.epochs),
            "features": jobs["features"] * unit.features, "fit": jobs["fit"] * unit.fit,
            "other": jobs["other"] * unit.other}
    out = {stage: work[stage] + jobs[stage] * unit.start for stage in STAGES}
    out["total"] = sum(out[stage] for stage in STAGES)
    return out


def wall_seconds(shape: RunShape, unit: UnitCosts, cores: int = 2, nodes: int = 1, gpu_speedup: float = 1.0,
                 queue_wait: float = 0.0, scheduler: float = 0.0) -> float:
    """Wall seconds on ``nodes`` machines of ``cores`` cores each (1 node: a local ``-c cores`` run):
    each stage lasts its CPU seconds over the job slots, at least its longest job; ``gpu_speedup``
    divides the training, feature and fit work; ``queue_wait`` is added once per stage (SLURM),
    ``scheduler`` once (Snakemake building the DAG)."""
    if cores < 1 or nodes < 1 or gpu_speedup <= 0:
        raise ValueError(f"cores ({cores}) and nodes ({nodes}) must be >= 1, gpu_speedup ({gpu_speedup}) > 0")
    slots = cores * nodes
    jobs = shape.jobs
    longest_train = unit.train + max(shape.epochs, default=0) * unit.epoch
    stages = {  # (work of the whole stage, longest job, cores one job takes)
        "train": (sum(unit.train + e * unit.epoch for e in shape.epochs) / gpu_speedup, longest_train / gpu_speedup,
                  min(2, cores)),
        "features": (jobs["features"] * unit.features / gpu_speedup, unit.features / gpu_speedup, 1),
        "fit": (jobs["fit"] * unit.fit / gpu_speedup, unit.fit / gpu_speedup, 1),
        "other": (jobs["other"] * unit.other, unit.other, 1),
    }
    wall = scheduler
    for stage, (work, longest, threads) in stages.items():
        if not jobs[stage]:
            continue
        # a job of `threads` cores runs in 1/threads of its CPU time; slots // threads such jobs at once
        per_slot = (work + jobs[stage] * unit.start) / threads / max(1, slots // threads)
        wall += max(per_slot, (longest + unit.start) / threads) + queue_wait
    return wall
