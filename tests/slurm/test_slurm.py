"""The tiny config through a real single-node SLURM cluster (slurmctld + slurmd on localhost) equals a local run.

Needs Debian's slurm-wlm and munge and root (.ci/run installs them); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import localcluster
import pandas as pd
import pytest

pytestmark = pytest.mark.slurm

TARGET = "results/tables/predictivity.csv"
SNAKEMAKE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = localcluster.missing_requirements()
    if reason:
        pytest.skip(reason)
    started = localcluster.start(tmp_path_factory.mktemp("slurm-state"))
    yield started
    started.stop()  # exactly the daemons it started, by pid


def snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), *args, TARGET]
    log = open(workdir / "snakemake.out", "w")  # noqa: SIM115 (closed by the caller's wait)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "DANDI_NO_ET": "1"})


def finish(process: subprocess.Popen[str], workdir: Path) -> str:
    process.wait(timeout=SNAKEMAKE_TIMEOUT_S)
    output = (workdir / "snakemake.out").read_text()
    assert process.returncode == 0, output[-5000:]
    return output


def slurm_jobs() -> dict[str, dict[str, str]]:
    """Jobs slurmctld still remembers (MinJobAge), by SLURM job id, as scontrol's key=value fields."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    return {job["JobId"]: job for job in jobs}


@pytest.fixture(scope="module")
def runs(repo: Path, cluster: localcluster.Cluster, tmp_path_factory: pytest.TempPathFactory):
    """The same config run locally and through SLURM, side by side (the SLURM run mostly waits on the
    scheduler, so running both at once costs little more than the SLURM run alone)."""
    local, slurm = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
    for workdir in (local, slurm):
        shutil.copy(repo / "tests" / "slurm" / "tiny.yaml", workdir / "config.yaml")
    started = time.monotonic()
    on_slurm = snakemake(
        repo, slurm, "--profile", str(repo / "workflow" / "profiles" / "slurm"),
        "--default-resources", f"slurm_partition={cluster.partition}",
        # the test cluster has no accounting (slurmdbd): no account, and squeue instead of sacct
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2",
        "--slurm-keep-successful-logs", "--latency-wait", "5")
    # 2 cores: the trained model's job gets the 2 threads it gets on SLURM (its weights depend on the count)
    on_local = snakemake(repo, local, "--profile", str(repo / "workflow" / "profiles" / "default"), "-c2")
    local_out = finish(on_local, local)
    slurm_out = finish(on_slurm, slurm)
    print(f"SLURM and local runs of tests/slurm/tiny.yaml side by side: {time.monotonic() - started:.1f} s")
    return local, slurm, local_out, slurm_out


def test_slurm_run_equals_local_run(runs):
    local, slurm, _, _ = runs
    on_local, on_slurm = pd.read_csv(local / TARGET), pd.read_csv(slurm / TARGET)
    assert len(on_slurm) == 3 and on_slurm[["raw", "ceiling", "score"]].notna().all().all()
    # Same stimuli, seeds and code: equal up to float summation order (torch threads differ per job).
    pd.testing.assert_frame_equal(on_slurm, on_local, check_exact=False, rtol=1e-6)


def test_every_job_ran_as_a_slurm_job_with_its_resources(runs, cluster):
    _, slurm, _, slurm_out = runs
    # a single job is "Job 5 has been ...", a group job (profile `groups:`) "Job <uuid> has been ..."
    submitted = re.findall(r"Job (\S+) has been submitted with SLURM jobid (\d+)", slurm_out)
    assert submitted, slurm_out[-3000:]
    jobs = slurm_jobs()  # finished jobs stay visible for MinJobAge seconds
    ours = [jobs[slurm_id] for _, slurm_id in submitted]
    assert all(job["JobState"] == "COMPLETED" for job in ours), [(j["JobId"], j["JobState"]) for j in ours]
    # the comment is rule_<rule>_wildcards_... or, for a group, rule_<group>_<its rules>
    rules = {name for job in ours for name in job["Comment"].split("_wildcards_")[0].split("_")[1:]}
    assert rules >= {"simulate", "manifest", "responses", "ceiling", "train", "features", "fit", "tables"}, rules
    for job in ours:
        # every job carries an explicit memory request and time limit from workflow/rules/common.smk
        assert job["MinMemoryNode"] not in ("0", ""), job
        assert job["TimeLimit"] not in ("UNLIMITED", "Partition_Limit"), job
    # a train job's threads become --cpus-per-task: 2 to train, 1 to evaluate only (config.train_threads)
    cpus = {job["Comment"].split("_wildcards_")[-1]: job["NumCPUs"] for job in ours
            if job["Comment"].startswith("rule_train")}
    assert cpus == {"trained": "2", "untrained": "1"}, cpus


def test_every_job_wrote_its_benchmark(runs):
    _, slurm, _, _ = runs
    paths = sorted((slurm / "results/benchmarks").rglob("*.tsv"))
    stages = {Path(path.relative_to(slurm / "results/benchmarks").parts[0]).stem for path in paths}
    assert stages == {"simulate", "manifest", "responses", "stimuli", "ceiling", "train", "features", "fit", "tables"}
    for path in paths:
        assert (pd.read_csv(path, sep="\t")["s"] > 0).all(), path  # wall seconds (max_rss too, if sampled)
