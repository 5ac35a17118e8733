"""A grid study with repeats, run by real workers: configuration x seed trials, the seed in results,
summary and claims from the CLI in every format and from Python."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from sweeper import analysis

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

SPEC = """
[study]
name = "reps"
dataset = "digits"
epochs = 2
repeats = 2
seed = 7

[params]
width = 16
batch_size = 32
schedule = "constant"

[[point]]
name = "sgd"
optimizer = "sgd"
lr = 0.1

[[point]]
name = "adam"
optimizer = "adam"
lr = 0.01

[[reference]]
config = "sgd"
test_accuracy = 0.5

[[claim]]
text = "adam beats sgd"
kind = "higher"
metric = "test_accuracy"
x = "adam"
y = "sgd"
"""


def test_replicates_end_to_end(sweeper, write_spec, tmp_path):
    run = sweeper("run", str(write_spec(SPEC)), "--workers", "2", timeout=300)
    assert run.returncode == 0, run.stderr
    results = pd.read_csv(io.StringIO(sweeper("results", "reps", "--format", "csv").stdout))
    assert sorted(zip(results["optimizer"], results["seed"])) == [("adam", 7), ("adam", 8), ("sgd", 7), ("sgd", 8)]
    assert (results["state"] == "COMPLETE").all()
    # the same seed gives the same network: the two seeds of one configuration differ
    sgd = results[results["optimizer"] == "sgd"]
    assert sgd["test_error"].nunique() == 2

    url = f"sqlite:///{tmp_path / 'sweeper.db'}"
    summary = analysis.summary(url, "reps")
    assert summary["config"].tolist() == ["sgd", "adam"] and summary["n"].tolist() == [2, 2]
    mean = 1 - sgd["test_error"].mean()
    assert abs(summary.loc[0, "test_accuracy_mean"] - mean) < 1e-12
    assert summary.loc[0, "post_test_accuracy"] == 0.5 and summary.loc[0, "test_accuracy_low"] <= mean
    claims = analysis.claims(url, "reps")
    assert claims["verdict"].tolist()[0] in ("supported", "contradicted", "inconclusive")
    assert claims.loc[0, "n"] == 2

    for command, frame in (("summary", summary), ("claims", claims)):
        csv = pd.read_csv(io.StringIO(sweeper(command, "reps", "--format", "csv").stdout))
        assert list(csv.columns) == list(frame.columns)
        records = json.loads(sweeper(command, "reps", "--format", "json").stdout)
        assert len(records) == len(frame)
        out = tmp_path / f"{command}.parquet"
        assert sweeper(command, "reps", "--format", "parquet", "--out", str(out)).returncode == 0
        assert list(pd.read_parquet(out).columns) == list(frame.columns)
        assert "verdict" in sweeper(command, "reps").stdout or command == "summary"
    bad = sweeper("summary", "reps", "--by", "width")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "does not vary it" in bad.stderr
