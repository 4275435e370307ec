"""A throwaway single-node SLURM cluster on localhost: munged, slurmctld and slurmd, started and stopped by pid.

Used by tests/slurm and reusable by hand (as root, with Debian's ``slurm-wlm`` and ``munge`` installed)::

    python tests/slurm/localcluster.py start /tmp/cluster    # prints the pids, waits until the node is idle
    snakemake --profile workflow/profiles/slurm --slurm-no-account ...
    python tests/slurm/localcluster.py stop /tmp/cluster     # stops exactly the daemons `start` started

What it relies on (each learnt the hard way on Debian bookworm, slurm-wlm 22.05):
- the config must live at /etc/slurm/slurm.conf: the jobstep executor strips every ``SLURM_*`` variable,
  ``SLURM_CONF`` too, before its nested ``srun``. An existing slurm.conf not written here is never touched.
- munged refuses to run as root and needs /run/munge; a munged that already answers is reused, not restarted.
- ``RealMemory`` above what ``slurmd -C`` reports drains the node.
- there is no slurmdbd, so ``sacct`` cannot answer: jobs are followed with ``squeue``, which needs
  ``MinJobAge`` well above the status-check interval so finished jobs stay visible.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by neurofit tests/slurm/localcluster.py"
MUNGE_SOCKET_DIR = Path("/run/munge")
REQUIRED = ("munged", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
MIN_JOB_AGE_S = 600
PARTITION = "debug"


def missing_requirements() -> str | None:
    """Why a local cluster cannot start here, or None when it can."""
    absent = [b for b in REQUIRED if shutil.which(b) is None]
    if absent:
        return f"SLURM/munge binaries not installed ({', '.join(absent)}); apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "starting slurmd and munged needs root"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (installed by Debian's munge package)"
    if SLURM_CONF.exists() and MARKER not in SLURM_CONF.read_text():
        return f"{SLURM_CONF} exists and was not written by this helper: refusing to replace a real cluster's config"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> tuple[str, int, int]:
    """(node name, CPUs, RealMemory in MB) as ``slurmd -C`` sees this machine."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", out))
    # A little under the reported memory: slurmd re-measures at registration and drains the node if it is less.
    return fields["NodeName"], int(fields["CPUs"]), int(int(fields["RealMemory"]) * 0.95)


def slurm_conf(state: Path, node: str, cpus: int, memory_mb: int, ctld_port: int, d_port: int) -> str:
    return f"""{MARKER} (state in {state})
ClusterName=neurofit
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge={MIN_JOB_AGE_S}
ReturnToService=2
SchedulerParameters=sched_interval=1
MpiDefault=none
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def munge_answers() -> bool:
    """Whether a munged already answers on the default socket."""
    token = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if token.returncode != 0:
        return False
    return subprocess.run(["unmunge"], input=token.stdout, capture_output=True, timeout=10).returncode == 0


def wait_for(check, what: str, timeout_s: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    tails = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    raise RuntimeError(f"local SLURM cluster: {what} not ready after {timeout_s:.0f} s\n{tails}")


@dataclass
class Cluster:
    """The daemons one `start` launched (pids) and what it wrote; `stop` undoes exactly that."""

    state: str
    pids: dict[str, int] = field(default_factory=dict)
    wrote_conf: bool = False
    partition: str = PARTITION
    min_job_age_s: int = MIN_JOB_AGE_S

    def save(self) -> None:
        (Path(self.state) / "cluster.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, state: Path) -> Cluster:
        return cls(**json.loads((state / "cluster.json").read_text()))

    def stop(self, timeout_s: float = 20) -> None:
        # slurmd first (it may still run job steps), munged last (the others authenticate through it).
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is not None:
                terminate(pid, timeout_s)
        if self.wrote_conf and SLURM_CONF.exists() and MARKER in SLURM_CONF.read_text():
            SLURM_CONF.unlink()
            self.wrote_conf = False
        self.save()


def terminate(pid: int, timeout_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # Our own child: reap it; otherwise (a `start` in another process) poll for its exit.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def start(state: Path, timeout_s: float = 60) -> Cluster:
    """Start munged (unless one answers), slurmctld and slurmd in the foreground, each logging under `state`."""
    reason = missing_requirements()
    if reason:
        raise RuntimeError(reason)
    state = state.resolve()
    for sub in ("ctld", "spool"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(state=str(state))
    try:
        if not munge_answers():
            munge = pwd.getpwnam("munge")
            MUNGE_SOCKET_DIR.mkdir(mode=0o755, exist_ok=True)
            os.chown(MUNGE_SOCKET_DIR, munge.pw_uid, munge.pw_gid)
            if not Path("/etc/munge/munge.key").exists():
                subprocess.run(["mungekey", "--create"], check=True, user="munge")
            with open(state / "munged.out", "wb") as out:
                proc = subprocess.Popen(["munged", "--foreground"], user="munge", group="munge",
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            cluster.pids["munged"] = proc.pid
            cluster.save()
            wait_for(munge_answers, "munged", timeout_s, [state / "munged.out"])

        node, cpus, memory_mb = node_hardware()
        SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SLURM_CONF.write_text(slurm_conf(state, node, cpus, memory_mb, free_port(), free_port()))
        cluster.wrote_conf = True
        for name, argv in (("slurmctld", ["slurmctld", "-D", "-c", "-i"]), ("slurmd", ["slurmd", "-D"])):
            with open(state / f"{name}.out", "wb") as out:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            cluster.pids[name] = proc.pid
            cluster.save()

        def node_idle() -> bool:
            info = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
            return info.returncode == 0 and info.stdout.strip() == "idle"

        logs = [state / n for n in ("slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log")]
        wait_for(node_idle, "node (sinfo state idle)", timeout_s, logs)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("state", type=Path, help="folder for the cluster's state, logs and pids")
    args = parser.parse_args()
    if args.action == "start":
        cluster = start(args.state)
        print(json.dumps(cluster.pids))
    else:
        Cluster.load(args.state.resolve()).stop()


if __name__ == "__main__":
    main()
