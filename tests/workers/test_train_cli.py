"""`sweeper train` as a user runs it: the issue's bars on real MNIST, JSON lines, exit codes 0/2/3."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

SECTION_B = ["--param", "activation=tanh", "--param", "loss=mse", "--param", "lr=0.3",
             "--param", "batch_size=500", "--param", "schedule=constant", "--param", "l2=0"]


def sweeper_train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweeper", "train", *args], capture_output=True, text=True,
                          timeout=timeout)


def json_run(*args: str) -> tuple[list[dict], dict]:
    proc = sweeper_train(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["epoch"] * (len(lines) - 1) + ["result"]
    return lines[:-1], lines[-1]


def test_default_mlp_on_mnist_below_4_percent(mnist_dir):
    epochs, result = json_run("--dataset", f"idx:{mnist_dir}", "--epochs", "5")
    assert len(epochs) == 5
    assert epochs[-1]["valid_error"] < 0.04
    assert result["test_error"] < 0.05


def test_section_b_uniform01_does_not_learn_glorot_does(mnist_dir):
    stuck, _ = json_run("--dataset", f"idx:{mnist_dir}", *SECTION_B, "--param", "init=uniform01", "--epochs", "3")
    assert all(e["valid_error"] >= 0.80 for e in stuck)
    learns, _ = json_run("--dataset", f"idx:{mnist_dir}", *SECTION_B, "--param", "init=glorot", "--epochs", "5")
    assert learns[-1]["valid_error"] < 0.20


def test_lenet_adam_two_epochs_below_2_5_percent(mnist_dir):
    epochs, result = json_run("--model", "lenet", "--dataset", f"idx:{mnist_dir}", "--param", "optimizer=adam",
                              "--param", "lr=0.001", "--epochs", "2")
    assert epochs[-1]["valid_error"] < 0.025
    assert result["report"]["accuracy"] > 0.97


def test_text_output_has_epochs_report_and_confident_precision():
    proc = sweeper_train("--epochs", "2", "--param", "width=32")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("\nepoch ") + out.startswith("epoch ") == 2
    assert "test_error" in out and "macro avg" in out and "confident predictions (p > 0.5): n=" in out


@pytest.mark.parametrize("args, message", [
    (["--param", "lr=-1"], "lr"),
    (["--param", "widht=10"], "did you mean 'width'"),
    (["--param", "lr"], "NAME=VALUE"),
    (["--model", "resnet"], "unknown model"),
    (["--dataset", "idx:/nonexistent"], "/nonexistent"),
    (["--backend", "tpu"], "unknown backend"),
    (["--seed", "-1"], "'--seed': -1 is not in the range 0<=x<=4294967295"),
    (["--threads", "0"], "'--threads': 0 is not in the range x>=1"),
    (["--save", "/nonexistent/w.npz"], "folder /nonexistent does not exist"),
])
def test_bad_input_exit_2_one_line(args, message):
    proc = sweeper_train(*args, "--epochs", "1")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_divergence_exit_3():
    proc = sweeper_train("--param", "lr=1e4", "--param", "schedule=constant", "--epochs", "5", "--json")
    assert proc.returncode == 3
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["type"] == "diverged" and last["error"] == f"diverged at epoch {last['epoch']}"
    assert proc.stderr.strip().startswith(f"error: diverged at epoch {last['epoch']}")
