"""A user's own model or data set, checked by a worker process before any study is made."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

from storage.contract.errors import BadInput
from storage.contract.params import Param, params_from_json

CHECK_TIMEOUT_S = 600  # importing the model, loading the data and compiling one forward pass


@dataclass(frozen=True)
class Described:
    """What the check found: the model's own parameters, the data set's classes, whether the data set
    brings its own validation pair."""

    params: dict[str, Param]
    n_classes: int
    own_validation: bool


def describe(model: str, dataset: str) -> Described:
    """Check `model` on `dataset` as a worker will run them (python -m workers check): the model
    imported, the data loaded and checked array by array, the network built and run once. BadInput
    with the worker's one-line reason when it cannot (not importable, not a workers.nn.model.Model, a
    wrong signature or output shape, a bad array)."""
    argv = [sys.executable, "-m", "workers", "check", model, "--dataset", dataset, "--json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BadInput(f"model {model} on {dataset}: checking them took more than {CHECK_TIMEOUT_S} s: "
                       f"run python -m workers check {model} --dataset {dataset} to see where it hangs") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].removeprefix("error: ") if lines else f"the check exited with code {done.returncode}"
        raise BadInput(why)
    found = json.loads(done.stdout.splitlines()[-1])
    return Described(params_from_json(found["params"]), found["n_classes"], found["own_validation"])
