"""A grid study with repeats, run by real workers: configuration x seed trials, the seed in results,
summary and claims from the CLI in every format and from Python."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest

from sweeper import analysis
from tests.clitools import sweeper_cli

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
post = "tf-hyperparameters"
origin = "post"
kind = "higher"
metric = "test_accuracy"
x = "adam"
y = "sgd"
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The folder of one `sweeper run --workers 2` of SPEC (its sweeper.db), shared by this file's tests."""
    folder = tmp_path_factory.mktemp("reps")
    (folder / "spec.toml").write_text(SPEC)
    run = sweeper_cli("run", "spec.toml", "--workers", "2", cwd=folder, timeout=300)
    assert run.returncode == 0, run.stderr
    return folder


@pytest.fixture
def reps(ran, tmp_path) -> str:
    """A copy of the run's database in the test's folder (sqlite:///sweeper.db there): its own to change."""
    for path in ran.glob("sweeper.db*"):  # with the kept files' folder beside it
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, tmp_path / path.name)
    return f"sqlite:///{tmp_path / 'sweeper.db'}"


def test_replicates_end_to_end(sweeper, reps, tmp_path):
    results = pd.read_csv(io.StringIO(sweeper("results", "reps", "--format", "csv").stdout))
    assert sorted(zip(results["optimizer"], results["seed"])) == [("adam", 7), ("adam", 8), ("sgd", 7), ("sgd", 8)]
    assert (results["state"] == "COMPLETE").all()
    # the same seed gives the same network: the two seeds of one configuration differ
    sgd = results[results["optimizer"] == "sgd"]
    assert sgd["test_error"].nunique() == 2

    url = reps
    stats = analysis.open("reps", storage=url).config_stats()
    assert stats["config"].tolist() == ["sgd", "adam"] and stats["n"].tolist() == [2, 2]
    mean = 1 - sgd["test_error"].mean()
    assert abs(stats.loc[0, "test_accuracy_mean"] - mean) < 1e-12
    assert stats.loc[0, "post_test_accuracy"] == 0.5 and stats.loc[0, "test_accuracy_low"] <= mean
    claims = analysis.open("reps", storage=url).claims()
    assert claims["verdict"].tolist()[0] in ("supported", "contradicted", "inconclusive")
    assert claims.loc[0, "n"] == 2

    for command, frame in (("summary", stats), ("claims", claims)):
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


def test_claims_changed_after_trials_keep_their_old_verdicts(sweeper, write_spec, reps, tmp_path):
    """A study's claims rewritten after it ran: the new ones are judged, the old ones and the verdicts they
    had are kept in the study with the date and listed in the report's superseded appendix."""
    from sweeper import manager

    url = reps
    before = analysis.open("reps", storage=url).claims()
    assert before.columns[:3].tolist() == ["section", "post", "origin"]
    assert (before["post"].tolist(), before["origin"].tolist()) == (["tf-hyperparameters"], ["post"])
    changed = SPEC.replace('text = "adam beats sgd"', 'text = "sgd is not worse than adam"').replace(
        'kind = "higher"', 'kind = "not_lower"\nmargin = 0.01').replace(
        'x = "adam"\ny = "sgd"', 'x = "sgd"\ny = "adam"')
    created = sweeper("create", str(write_spec(changed, "changed.toml")))
    assert created.returncode == 0, created.stderr
    handle = manager.open_study("reps", url)
    [entry] = manager.superseded(handle.study)
    from sweeper.evidence import digest

    assert entry["by"] == digest(handle.spec.claims) and entry["digest"] != entry["by"]
    [old] = entry["claims"]
    assert (old["claim"], old["verdict"], old["target"]) == ("adam beats sgd", before.loc[0, "verdict"], "x > y")
    assert old["effect"] == pytest.approx(before.loc[0, "effect"])
    assert analysis.open("reps", storage=url).claims()["claim"].tolist() == ["sgd is not worse than adam"]
    out = tmp_path / "report"
    assert sweeper("report", "reps", "--out", str(out)).returncode == 0
    text = (out / "report.md").read_text()
    assert "## Superseded claims" in text and f"claims `{entry['digest']}`, replaced {entry['replaced']}" in text
    assert "| adam beats sgd | test_accuracy: adam vs sgd, x > y |" in text
    assert f"Claims digest `{entry['by']}`." in text
    # creating it again with the same claims supersedes nothing more
    assert sweeper("create", str(write_spec(changed, "changed.toml"))).returncode == 0
    assert len(manager.superseded(manager.open_study("reps", url).study)) == 1
