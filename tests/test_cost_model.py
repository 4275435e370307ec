"""The cost model's formula (the benchmark benchmarks/bench_cost_model.py checks it against a run)."""

from __future__ import annotations

import pytest

from neurofit.cost_model import (
    GpuTerms,
    Job,
    RunShape,
    UnitCosts,
    cpu_seconds,
    pipeline_jobs,
    run_jobs,
    wall_seconds,
)

START = {"simulate": 1.0, "train": 1.5, "features": 1.5, "fit": 0.5, "other": 1.0}
UNIT = UnitCosts(epoch=10.0, train=3.0, features=1.5, fit=4.0, other=0.5, simulate=15.0, dispatch=0.5, start=START)
# 3 models (one trained 3 epochs, one the simulator's reference), 5 layers each, 1 simulated dataset, 2 metrics,
# 15 other jobs (4 data jobs, tables and 10 report jobs)
SHAPE = RunShape(epochs=(0, 3, 0), layers=(5, 5, 5), datasets=1, metrics=2, other_jobs=15, simulated=1,
                 reference=(False, False, True))


def test_cpu_seconds_count_every_job_once_with_its_stages_start():
    cpu = cpu_seconds(SHAPE, UNIT)
    assert SHAPE.jobs == {"simulate": 1, "train": 3, "features": 15, "fit": 30, "other": 15}
    assert cpu["simulate"] == pytest.approx(15.0 + 1.0 + 0.5)
    assert cpu["train"] == pytest.approx(3 * 3.0 + 3 * 10.0 + 3 * (1.5 + 0.5))
    assert cpu["features"] == pytest.approx(15 * (1.5 + 1.5 + 0.5))
    assert cpu["fit"] == pytest.approx(30 * (4.0 + 0.5 + 0.5))  # regions do not multiply the fits
    assert cpu["other"] == pytest.approx(15 * (0.5 + 1.0 + 0.5))
    assert cpu["total"] == pytest.approx(sum(cpu[s] for s in ("simulate", "train", "features", "fit", "other")))


def test_run_jobs_schedules_by_dependencies_priority_and_free_cores():
    assert run_jobs([Job("a", 2.0), Job("b", 3.0, needs=("a",))], slots=4) == pytest.approx(5.0)
    assert run_jobs([Job("a", 2.0), Job("b", 3.0)], slots=2) == pytest.approx(3.0)
    assert run_jobs([Job("a", 2.0), Job("b", 3.0)], slots=1) == pytest.approx(5.0)
    # a 2-thread job cannot start beside a running 1-thread job on 2 cores; 1-thread jobs pass it
    two = [Job("long", 10.0), Job("train", 4.0, threads=2), Job("small", 1.0)]
    assert run_jobs(two, slots=2) == pytest.approx(14.0)
    # priority: the long job first, so the rest runs beside it
    chain = [Job("x", 1.0), Job("y", 1.0), Job("head", 5.0, priority=50), Job("tail", 1.0, needs=("head",))]
    assert run_jobs(chain, slots=2) == pytest.approx(6.0)
    assert run_jobs([Job(c.name, c.seconds, needs=c.needs) for c in chain], slots=1) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="unknown jobs"):
        run_jobs([Job("a", 1.0, needs=("b",))], slots=1)


def test_wall_seconds_follow_the_critical_path_with_unlimited_slots():
    many = wall_seconds(SHAPE, UNIT, cores=2, nodes=1000)
    job = {stage: UNIT.job_start(stage) for stage in START}
    # simulate -> manifest -> stimuli -> features -> fit -> tables -> report, the reference's train in between
    head = (15.0 + job["simulate"]) + (0.5 + job["other"])  # simulate, manifest
    after_train = 15.0 + job["simulate"] + job["train"] + 3.0  # the trained model: 3 + 30 s of work on 1 core
    trained = job["train"] + 3.0 + 30.0
    features_ready = max(head + 0.5 + job["other"], trained, after_train)
    tail = (1.5 + job["features"]) + (4.0 + job["fit"]) + 2 * (0.5 + job["other"])  # features, fit, tables, report
    assert many == pytest.approx(features_ready + tail)
    assert wall_seconds(SHAPE, UNIT, cores=2, nodes=1000, queue_wait=60) > many + 6 * 60
    with pytest.raises(ValueError, match="cores"):
        wall_seconds(SHAPE, UNIT, cores=0)


def test_gpu_terms_divide_each_network_and_fit_stages_work_and_add_the_cuda_start():
    gpu = GpuTerms(train=10.0, features=5.0, fit=2.0, start=1.5)
    many = wall_seconds(SHAPE, UNIT, cores=2, nodes=1000, gpu=gpu)
    job = {stage: UNIT.job_start(stage) for stage in START}
    head = (15.0 + job["simulate"]) + (0.5 + job["other"])  # simulate and manifest: no GPU term
    after_train = 15.0 + job["simulate"] + job["train"] + 1.5 + 3.0 / 10  # the reference model's train
    trained = job["train"] + 1.5 + (3.0 + 30.0) / 10
    features_ready = max(head + 0.5 + job["other"], trained, after_train)
    tail = (1.5 / 5 + job["features"] + 1.5) + (4.0 / 2 + job["fit"] + 1.5) + 2 * (0.5 + job["other"])
    assert many == pytest.approx(features_ready + tail)
    # a GPU whose start outweighs its speed-up on tiny jobs makes the run slower: the model says so
    slow_start = GpuTerms(1.1, 1.1, 1.1, start=5.0)
    assert wall_seconds(SHAPE, UNIT, cores=2, gpu=slow_start) > wall_seconds(SHAPE, UNIT, cores=2)
    with pytest.raises(ValueError, match="speed-up of fit"):
        GpuTerms(fit=0.0)


def test_wall_seconds_on_one_core_is_every_jobs_time_in_a_row_and_more_cores_help():
    jobs = pipeline_jobs(SHAPE, UNIT, cores=1)
    assert wall_seconds(SHAPE, UNIT, cores=1, scheduler=3.0) == pytest.approx(3.0 + sum(j.seconds for j in jobs))
    assert wall_seconds(SHAPE, UNIT, cores=1) > wall_seconds(SHAPE, UNIT, cores=2) > wall_seconds(SHAPE, UNIT, cores=8)


def test_a_training_job_holds_two_cores_for_its_wall_time():
    # the same CPU seconds spread over 2 cores at half efficiency (parallelism 1) last twice as long as at 2
    slow = wall_seconds(SHAPE, UnitCosts(**{**UNIT.__dict__, "train_parallelism": 1.0}), cores=2)
    fast = wall_seconds(SHAPE, UnitCosts(**{**UNIT.__dict__, "train_parallelism": 2.0}), cores=2)
    assert slow > fast
    assert cpu_seconds(SHAPE, UnitCosts(**{**UNIT.__dict__, "train_parallelism": 1.0})) == cpu_seconds(SHAPE, UNIT)


def test_the_dag_has_the_configs_jobs():
    jobs = pipeline_jobs(SHAPE, UNIT)
    kinds = [j.name.split()[0] for j in jobs]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "simulate": 1, "manifest": 1, "stimuli": 1, "responses": 1, "ceiling": 1, "train": 3, "features": 15,
        "fit": 30, "tables": 1, "report": 10}
    reference = next(j for j in jobs if j.name == "train m2")
    assert reference.needs == ("simulate d0",) and reference.threads == 1  # evaluation only: one core
    assert [j.threads for j in jobs if j.name.startswith("train")] == [1, 2, 1]  # m1 trains 3 epochs
    with pytest.raises(ValueError, match="simulated"):
        pipeline_jobs(RunShape((0,), (1,), datasets=1, metrics=1, other_jobs=5, simulated=2), UNIT)
