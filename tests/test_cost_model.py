"""The cost model's formula (the benchmark benchmarks/bench_cost_model.py checks it against a run)."""

from __future__ import annotations

import pytest

from neurofit.cost_model import RunShape, UnitCosts, cpu_seconds, wall_seconds

UNIT = UnitCosts(start=2.0, epoch=10.0, train=3.0, features=1.5, fit=4.0, other=0.5)
# 3 models (one trained 3 epochs), 5 layers each, 1 dataset, 2 metrics, 19 other jobs
SHAPE = RunShape(epochs=(0, 3, 0), layers=(5, 5, 5), datasets=1, metrics=2, other_jobs=19)


def test_cpu_seconds_count_every_job_once():
    cpu = cpu_seconds(SHAPE, UNIT)
    assert SHAPE.jobs == {"train": 3, "features": 15, "fit": 30, "other": 19}
    assert cpu["train"] == pytest.approx(3 * 3.0 + 3 * 10.0 + 3 * 2.0)
    assert cpu["features"] == pytest.approx(15 * (1.5 + 2.0))
    assert cpu["fit"] == pytest.approx(30 * (4.0 + 2.0))  # regions do not multiply the fits
    assert cpu["other"] == pytest.approx(19 * 2.5)
    assert cpu["total"] == pytest.approx(sum(cpu[s] for s in ("train", "features", "fit", "other")))


def test_wall_seconds_spread_stages_over_slots_but_not_below_the_longest_job():
    one_core = wall_seconds(SHAPE, UNIT, cores=1)
    two_cores = wall_seconds(SHAPE, UNIT, cores=2)
    many = wall_seconds(SHAPE, UNIT, cores=2, nodes=1000)
    assert two_cores < one_core
    # with unlimited slots every stage lasts its longest job: train (3 + 30 + 2) / 2 cores, then one job each
    assert many == pytest.approx((3.0 + 30.0 + 2.0) / 2 + (1.5 + 2.0) + (4.0 + 2.0) + (0.5 + 2.0))
    assert wall_seconds(SHAPE, UNIT, cores=2, nodes=1000, queue_wait=60) == pytest.approx(many + 4 * 60)
    assert wall_seconds(SHAPE, UNIT, cores=2, gpu_speedup=10) < two_cores
    with pytest.raises(ValueError, match="cores"):
        wall_seconds(SHAPE, UNIT, cores=0)
