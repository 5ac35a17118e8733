"""Helpers for the control side's tests: write a spec, run the real `sweeper` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A tiny study: digits, one hidden layer of fixed width (one compile per worker), few epochs.
TINY = """
[study]
name = "tiny"
model = "mlp"
dataset = "digits"
n_trials = {n_trials}
epochs = {epochs}
sampler = {{name = "tpe", n_startup_trials = 3}}
pruner = {pruner}

[params]
width = 16
batch_size = 64
schedule = "constant"
lr = {{float = [0.01, 0.5], log = true}}
l2 = {{float = [1e-6, 1e-3], log = true}}
"""


def tiny_spec(n_trials: int = 6, epochs: int = 2, pruner: str = '"none"') -> str:
    """The TOML text of the tiny study."""
    return TINY.format(n_trials=n_trials, epochs=epochs, pruner=pruner)


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="spec.toml") -> Path of a spec file in the test's folder."""

    def write(text: str, name: str = "spec.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def sweeper(tmp_path):
    """sweeper(*args, timeout=...) -> CompletedProcess of the real CLI, run in the test's folder."""

    def run(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path | None = None):
        environ = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
        environ.update(env or {})
        return subprocess.run([sys.executable, "-m", "sweeper", *map(str, args)], cwd=cwd or tmp_path,
                              env=environ, capture_output=True, text=True, timeout=timeout)

    return run
