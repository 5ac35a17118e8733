"""Compiled networks on disk: a new process loads what an earlier one compiled and trains the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

# Train a small MLP on digits in a fresh process; print its epochs and how many graphs it compiled.
SCRIPT = """
import json, sys
from workers import runtime
from storage.contract.options import WorkerOptions
runtime.configure(WorkerOptions(threads=1))
from workers import compiled
from workers.data import load
from workers.train import train
built = []
original = compiled._compile
compiled._compile = lambda *args: built.append(1) or original(*args)
records = []
params = dict(width=24, batch_size=64, schedule="constant", lr=0.2, dropout=float(sys.argv[1]))
result = train("mlp", params, load("digits"), epochs=2, seed=3, on_epoch=records.append)
print(json.dumps({"compiled": len(built), "epochs": [[r.train_loss, r.valid_error] for r in records],
                  "test_error": result.test_error}))
"""


def train_apart(cache, dropout: float = 0.0) -> tuple[dict, str]:
    """(the SCRIPT's figures, its stderr) from a fresh process compiling into `cache`."""
    # (this process's PyTensor flags and XLA cache folder, which a child would inherit, name the default folder)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "JAX_COMPILATION_CACHE_DIR")}
    env["SWEEPER_COMPILEDIR"] = str(cache)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(dropout)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A compile folder in which one process has compiled the network (and kept it)."""
    folder = tmp_path_factory.mktemp("compiledir")
    first, _ = train_apart(folder)
    assert first["compiled"] == 1
    return folder, first


def test_a_new_process_loads_the_network_and_trains_bit_identically(cache):
    folder, first = cache
    kept = list((folder / "sweeper-networks").glob("*.pkl.gz"))
    assert len(kept) == 1 and kept[0].stat().st_size > 0
    second, _ = train_apart(folder)
    assert second["compiled"] == 0  # loaded, not compiled
    assert second == {**first, "compiled": 0}


def test_a_damaged_file_is_compiled_again_and_replaced(cache, tmp_path):
    folder, first = cache
    kept = next((folder / "sweeper-networks").glob("*.pkl.gz"))
    kept.write_bytes(kept.read_bytes()[:1000])  # truncated, as by a full disk
    again, log = train_apart(folder)
    assert again == first
    assert "unreadable" in log and "compiling again" in log
    reloaded, _ = train_apart(folder)
    assert reloaded["compiled"] == 0 and reloaded["epochs"] == first["epochs"]


def test_networks_with_dropout_are_compiled_each_time(tmp_path):
    first, _ = train_apart(tmp_path, dropout=0.2)
    second, _ = train_apart(tmp_path, dropout=0.2)
    assert first["compiled"] == second["compiled"] == 1 and first == second
    assert not list((tmp_path / "sweeper-networks").glob("*.pkl.gz"))


def test_a_folder_others_may_write_is_not_unpickled(cache):
    """Unpickling runs code: a cache folder that other users may write is compiled afresh (it was loaded)."""
    folder, first = cache
    kept = folder / "sweeper-networks"
    kept.chmod(0o777)
    try:
        again, log = train_apart(folder)
    finally:
        kept.chmod(0o755)
    assert again == first  # compiled, not loaded
    assert "may be written by other users" in log
