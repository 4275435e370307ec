"""What each job asks of the scheduler (workflow/rules/common.smk), read from a Snakemake dry run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def dry_run_resources(repo: Path, workdir: Path, config: dict) -> dict[str, list[dict[str, str]]]:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(workdir / "config.yaml"), "-n", "-c2"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", run.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        resources = re.search(r"resources: (.*)", block)
        if rule and resources and rule.group(1) != "all":
            fields = dict(re.findall(r"(\w+)=([^,]+)", resources.group(1)))
            fields["threads"] = (re.findall(r"threads: (\d+)", block) or ["1"])[0]  # Snakemake omits 1
            fields["model"] = (re.findall(r"model=(\w+)", block) or [""])[0]
            jobs.setdefault(rule.group(1), []).append(fields)
    return jobs


@pytest.fixture(scope="module")
def tiny(repo: Path) -> dict:
    return yaml.safe_load((repo / "tests" / "slurm" / "tiny.yaml").read_text())


def test_every_job_has_memory_and_runtime_and_no_gpu_by_default(repo, tiny, tmp_path):
    jobs = dry_run_resources(repo, tmp_path, tiny)
    rules = {"fit" if rule.startswith("fit_") else rule for rule in jobs}  # one fit rule per dataset, fit_<dataset>
    assert rules >= {"simulate", "manifest", "responses", "ceiling", "train", "features", "fit", "tables"}
    for rule, entries in jobs.items():
        for fields in entries:
            # memory that grows with the input is only known once the input exists
            assert fields["mem_mb"] == "<TBD>" or int(fields["mem_mb"]) >= 500, (rule, fields)
            assert fields["runtime"] == "<TBD>" or int(fields["runtime"]) >= 15, (rule, fields)
            assert "gpu" not in fields and "slurm_partition" not in fields, (rule, fields)
    assert int(jobs["simulate"][0]["mem_mb"]) >= 1000 and int(jobs["train"][0]["runtime"]) >= 60


def test_gpu_config_puts_network_jobs_on_the_gpu_partition(repo, tiny, tmp_path):
    config = {**tiny, "compute": {"gpu": True, "gpu_partition": "gpu", "gpu_model": "a100"}}
    jobs = dry_run_resources(repo, tmp_path, config)
    for rule, entries in jobs.items():
        for fields in entries:
            if rule in ("train", "features"):
                assert (fields["gpu"], fields["gpu_model"], fields["slurm_partition"]) == ("1", "a100", "gpu")
            else:
                assert "gpu" not in fields and "slurm_partition" not in fields, (rule, fields)


def test_a_train_job_holds_two_cores_to_train_and_one_to_evaluate(repo, tiny, tmp_path):
    """An evaluation-only job (untrained control, given weights) runs beside the simulator on a 2-core
    machine; a model trained here keeps 2 threads (its weights depend on the thread count)."""
    trained = {"architecture": "alexnet_small", "objective": "supervised", "width": 8, "epochs": 1, "seed": 3,
               "layers": ["fc"]}
    config = {**tiny, "models": {**tiny["models"], "trained": trained}}
    threads = {job["model"]: job["threads"] for job in dry_run_resources(repo, tmp_path, config)["train"]}
    assert threads == {"untrained": "1", "trained": "2"}
