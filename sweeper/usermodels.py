"""A user's own model, described by a worker process before any study is made: its parameters, checked."""

from __future__ import annotations

import json
import subprocess
import sys

from storage.contract.errors import BadInput
from storage.contract.params import Param, param_from_json

CHECK_TIMEOUT_S = 600  # importing the model and compiling one forward pass on the study's data


def describe(model: str, dataset: str) -> dict[str, Param]:
    """The own parameters of user model `model` (package.module:function), as a worker imports it: the
    worker process (python -m workers model) also builds its network for `dataset`'s images and checks
    its output. BadInput with the worker's one-line reason when it cannot (not importable, not a
    workers.nn.model.Model, a wrong signature or output shape, a bad data set)."""
    argv = [sys.executable, "-m", "workers", "model", model, "--dataset", dataset, "--json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BadInput(f"model {model}: checking it took more than {CHECK_TIMEOUT_S} s: "
                       f"run python -m workers model {model} to see where it hangs") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1].removeprefix("error: ") if lines else f"the check exited with code {done.returncode}"
        raise BadInput(why)
    own = json.loads(done.stdout.splitlines()[-1])["params"]
    return {name: param_from_json(p) for name, p in own.items()}
