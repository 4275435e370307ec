"""Recovering from a killed run without a manual ``snakemake --unlock``.

Snakemake locks the working directory for the length of a run (``.snakemake/locks``) and removes the
lock when it ends, also on Ctrl-C. A run killed outright (SIGKILL, the OOM killer, a closed SSH session
without nohup) leaves the lock behind, and the next run stops with "Directory cannot be locked". The
Snakefile records which process holds the lock (:func:`record_run`, at ``onstart``); a later run on the
same host removes the lock only when that process is gone (:func:`clear_stale_locks`, at parse time,
before Snakemake takes its own lock). A lock whose owner is unknown or alive is left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

RECORD = "neurofit-run.json"


def record_run(snakemake_dir: str | Path = ".snakemake") -> None:
    """Note the process that holds the lock of this working directory (called once the lock is taken)."""
    folder = Path(snakemake_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                             "started": time.strftime("%Y-%m-%d %H:%M:%S")}))


def _running_snakemake(pid: int) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.parent.is_dir() and Path("/proc/self").exists():  # Linux: also catches a reused pid
        try:
            return b"snakemake" in cmdline.read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_stale_locks(snakemake_dir: str | Path = ".snakemake") -> str | None:
    """Remove the locks of a run whose process is gone; the message says what was removed (None: nothing)."""
    folder = Path(snakemake_dir)
    locks = folder / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return None
    try:
        owner = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None  # not ours to judge: Snakemake's own message (snakemake --unlock) stands
    if owner.get("host") != socket.gethostname() or _running_snakemake(int(owner.get("pid", -1))):
        return None
    shutil.rmtree(locks, ignore_errors=True)
    return (f"neurofit: removed the lock left by a run that no longer exists (pid {owner['pid']}, started "
            f"{owner.get('started')}, killed?); its unfinished outputs are redone (rerun-incomplete)")
