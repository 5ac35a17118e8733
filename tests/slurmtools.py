"""A real one-node Slurm for the tests: Debian's munge, slurmctld and slurmd, installed if missing, in a folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch")

CONF = """\
ClusterName=sweeper-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SchedulerType=sched/backfill
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ReturnToService=2
KillWait=5
MinJobAge=300
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def install() -> str | None:
    """Install Debian's Slurm and munge where they are missing; None when done, else why it cannot be."""
    if all(Path(p).exists() for p in DAEMONS):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "Slurm is not installed and this is no root Debian machine to install it (apt-get install slurmd)"
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if done.returncode != 0 or not all(Path(p).exists() for p in DAEMONS):
        return f"apt-get could not install Slurm: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path) -> dict[str, str]:
    """Start munge, slurmctld and slurmd with their state in `root`; the environment that reaches them."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)  # munged checks that its key and socket folder are private
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    subprocess.run(["/usr/sbin/munged", "--force", f"--key-file={key}", f"--socket={root}/munge.sock",
                    f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
                    f"--seed-file={root}/munge.seed"], check=True, capture_output=True, timeout=30)
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 2
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], root=root, cpus=os.cpu_count(), mem=mem,
                                ctld_port=free_port(), d_port=free_port()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, capture_output=True, env=env, timeout=30)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, capture_output=True, env=env, timeout=30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        if state.stdout.strip() in ("idle", "mixed", "allocated"):
            return env
        time.sleep(0.5)
    stop(root, env)
    raise RuntimeError(f"the test's Slurm node did not come up: {(root / 'slurmd.log').read_text()[-2000:]}")


def stop(root: Path, env: dict[str, str]) -> None:
    """Cancel every job, shut slurmctld and slurmd down, stop munged."""
    subprocess.run(["scancel", "--user", "root"], capture_output=True, env=env, timeout=60)
    subprocess.run(["scontrol", "shutdown"], capture_output=True, env=env, timeout=60)
    pid = root / "munged.pid"
    if pid.exists():
        try:
            os.kill(int(pid.read_text()), 15)
        except (ProcessLookupError, ValueError):
            pass


def jobs(env: dict[str, str], job: str) -> dict[str, str]:
    """The array's tasks that Slurm still lists, task id -> state."""
    done = subprocess.run(["squeue", "-h", "-r", "-j", job, "--states=all", "-o", "%i|%T"], capture_output=True,
                          text=True, env=env, timeout=60)
    return dict(line.split("|") for line in done.stdout.split())
