"""What a Snakemake dry run of the workflow would run: the shared helper of the DAG tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def planned_jobs(workdir: Path, configfile: Path, env: dict[str, str] | None = None) -> dict[str, int]:
    """``{rule: job count}`` of ``snakemake -n --quiet rules`` in ``workdir`` with ``configfile``."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "-n", "--quiet", "rules"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}
