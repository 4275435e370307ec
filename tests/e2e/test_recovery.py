"""What a user sees when a run fails, and that a plain ``snakemake`` recovers after a killed run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # and so slow (tests/conftest.py)


def snakemake_command(repo: Path, workdir: Path, *args: str) -> list[str]:
    # No --profile: the README's plain command, which reads profiles/default by itself.
    return [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "-c1", *args]


def test_a_failed_stage_prints_its_message_last_and_once(repo, tmp_path):
    data = tmp_path / "data" / "sub-1"
    data.mkdir(parents=True)
    (data / "sub-1_ses-1.nwb").write_text("<html>502 Bad Gateway</html>\n")  # an error page saved as .nwb
    (tmp_path / "config.yaml").write_text(
        f"datasets:\n  lab:\n    source: local\n    path: {tmp_path / 'data'}\n    regions: [IT]\n"
        "models:\n  m: {architecture: alexnet_small, objective: untrained, width: 8}\n")
    run = subprocess.run(snakemake_command(repo, tmp_path, "results/datasets/lab/manifest.json"),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1
    screen = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    message = f"{data / 'sub-1_ses-1.nwb'}: not a readable NWB/HDF5 file"
    assert screen[-1].startswith(message), screen[-12:]
    assert sum(message in line for line in screen) == 1  # once: not inside a traceback, not echoed by the job
    assert screen[-2] == f"{tmp_path}/results/logs/manifest/lab.log:" or screen[-2].endswith("manifest/lab.log:")
    log = (tmp_path / "results" / "logs" / "manifest" / "lab.log").read_text()
    assert "Traceback (most recent call last)" in log and "DatasetError" in log
    assert not any("Traceback" in line for line in screen)


def test_a_plain_rerun_recovers_from_a_killed_run(repo, tmp_path):
    shutil.copy(repo / "tests" / "e2e" / "tiny.yaml", tmp_path / "config.yaml")
    target = "results/datasets/sim/manifest.json"
    first = subprocess.Popen(snakemake_command(repo, tmp_path, target), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    incomplete = tmp_path / ".snakemake" / "incomplete"
    deadline = time.time() + 300
    while time.time() < deadline and not (incomplete.is_dir() and any(incomplete.iterdir())):
        time.sleep(0.5)
    assert first.poll() is None, "the run ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)  # as the OOM killer or a lost SSH session would: no cleanup at all
    first.wait()
    assert any((tmp_path / ".snakemake" / "locks").iterdir())  # what used to stop the next run
    again = subprocess.run(snakemake_command(repo, tmp_path, target), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "removed the lock left by a run that no longer exists" in again.stderr
    assert (tmp_path / target).is_file()
