"""What the tests of the command lines share: run the real `sweeper` CLI, read a one-line refusal, read what
a process wrote to a pseudo-terminal, tell whether a process is alive, find a run's workers."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path


def sweeper_cli(*args, cwd: Path, env: dict | None = None, umask: int = 0o022, timeout: float = 120,
                memory: int | None = None) -> subprocess.CompletedProcess:
    """The real `sweeper` CLI in `cwd` under `umask` (and an address-space limit of `memory` bytes), with
    `env` (default: this environment without SWEEPER_STORAGE)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}

    def limit() -> None:
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "sweeper", *map(str, args)], cwd=cwd, env=env, umask=umask,
                          preexec_fn=limit, capture_output=True, text=True, timeout=timeout)


def one_line(done, *words: str) -> str:
    """The one-line error of a refused command (exit 2), holding `words`."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def read_terminal(leader: int) -> bytes:
    """Everything written to the pseudo-terminal whose leader is `leader`, until the writer closes it."""
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the writer ended: the terminal is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_using(db) -> list[int]:
    """Pids of the processes whose $SWEEPER_STORAGE is this SQLite file (the workers of a run on it)."""
    wanted = f"SWEEPER_STORAGE=sqlite:///{db}".encode()
    pids = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and wanted in open(f"/proc/{entry.name}/environ", "rb").read().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            pass
    return pids
