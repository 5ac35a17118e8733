"""Edges met by users (issue 20): a configuration queued twice, URLs of no file, a locked foreign SQLite
file, the dashboard reached at the machine's own address, analysis with the study alone, a reversed
--cpus range, and what the README's commands leave in a clone. Real processes, files and servers."""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib

import optuna
import pytest

from storage.contract.errors import BadInput
from sweeper import analysis, manager, toml_spec
from tests.conftest import need
from tests.sweeper.conftest import ROOT, tiny_spec
from tests.sweeper.test_dashboard import _request, study_url  # noqa: F401 - a fixture used below


def _one_line(result, needle: str) -> str:
    """The single `error: ` line of a refused command, which holds `needle`."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    return lines[0]


def _study(url: str, name: str, values=()):
    """The tiny study named `name` at `url`, with one complete trial per value in `values`."""
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(tiny_spec().replace('"tiny"', f'"{name}"'))), url)
    for value in values:
        trial = handle.study.ask(handle.spec.space)
        handle.study.tell(trial, value)
    return handle


def _waiting(url: str, name: str) -> list[dict]:
    return [t.system_attrs["fixed_params"] for t in optuna.load_study(study_name=name, storage=url).trials
            if t.state.name == "WAITING"]


def test_enqueue_twice_queues_each_configuration_once_and_says_how_many_it_skipped(sweeper, sqlite_url):
    other = _study(sqlite_url, "other", values=(0.3, 0.1, 0.2))
    _study(sqlite_url, "tiny")
    first = sweeper("enqueue", "tiny", "--from", "other", "--top", "2", "--storage", sqlite_url)
    assert first.returncode == 0, first.stderr
    best = [other.study.trials[1].params, other.study.trials[2].params]
    assert _waiting(sqlite_url, "tiny") == best

    again = sweeper("enqueue", "tiny", "--from", "other", "--top", "2", "--storage", sqlite_url)
    _one_line(again, "the 2 best configuration(s) of 'other' are already queued, running or done in study 'tiny'")
    assert _waiting(sqlite_url, "tiny") == best

    handle = manager.open_study("tiny", sqlite_url)
    queued, dropped = result = manager.enqueue_best(handle, manager.open_study("other", sqlite_url), 3)
    assert (queued, dropped, result.skipped) == ([other.study.trials[0].params], [], best)
    assert _waiting(sqlite_url, "tiny") == [*best, other.study.trials[0].params]


def test_enqueue_skips_a_configuration_already_done(sqlite_url):
    other = _study(sqlite_url, "other", values=(0.3, 0.1))
    handle = _study(sqlite_url, "tiny")
    ran = other.study.trials[1]  # the best: trained in this study too, without being queued
    handle.study.add_trial(optuna.trial.create_trial(params=ran.params, distributions=ran.distributions, value=0.5))
    with pytest.raises(BadInput, match="the 1 best configuration.s. of 'other' are already queued, running or done"):
        manager.enqueue_best(handle, other, 1)
    assert _waiting(sqlite_url, "tiny") == []
    result = manager.enqueue_best(handle, other, 2)
    assert (result[0], result.skipped) == ([other.study.trials[0].params], [ran.params])


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true"])
def test_a_sqlite_url_of_no_file_is_one_line_that_says_what_to_write(url, sweeper, write_spec, tmp_path):
    for args in (["create", write_spec(tiny_spec())], ["studies"], ["status", "tiny"]):
        line = _one_line(sweeper(*args, "--storage", url), "sqlite:///sweeper.db")
        assert "Traceback" not in line and ("names no SQLite file" in line or "in-memory" in line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_a_foreign_sqlite_file_locked_by_another_process_is_said_so_within_seconds(sweeper, tmp_path):
    held = sqlite3.connect(tmp_path / "foreign.db", isolation_level=None)
    try:
        held.execute("create table things (a integer)")
        held.execute("begin exclusive")
        held.execute("insert into things values (1)")
        begun = time.monotonic()
        result = sweeper("studies", "--storage", "sqlite:///foreign.db", timeout=40)
        took = time.monotonic() - begun
    finally:
        held.close()
    _one_line(result, "the SQLite file foreign.db is locked by another process")
    assert took < 20, took


def _own_address() -> str | None:
    """An address of this machine other than loopback (the one its default route leaves from), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.250", 9))  # no packet is sent: this only picks the route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.slow
def test_a_dashboard_on_every_address_answers_for_the_address_it_is_reached_at(study_url):  # noqa: F811
    server = subprocess.Popen([sys.executable, "-m", "sweeper", "dashboard", "--storage", study_url,
                               "--host", "0.0.0.0", "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        port = re.search(r"http://0\.0\.0\.0:(\d+)/", line)[1]
        addresses = ["127.0.0.2", *filter(None, [_own_address()])]
        for address in addresses:
            base = f"http://{address}:{port}"
            assert _request(base, "/api/studies", host=f"{address}:{port}")[0] == 200, address
            assert _request(base, "/api/studies", host=f"evil.example:{port}")[0] == 421, address
            assert _request(base, "/api/studies", host=f"127.0.0.3:{port}")[0] == 421, address  # not the one reached
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_analysis_opens_the_study_alone_in_the_storage_the_docs_name(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.delenv("SWEEPER_STORAGE", raising=False)
    monkeypatch.chdir(tmp_path)
    _study("sqlite:///sweeper.db", "tiny", values=(0.3, 0.2))  # ./sweeper.db
    _study(sqlite_url.replace("sweeper.db", "env.db"), "tiny", values=(0.4,))
    study = analysis.open("tiny")
    assert study.trials()["valid_error"].tolist() == [0.3, 0.2]
    assert study.epochs().empty and study.curves().empty
    monkeypatch.setenv("SWEEPER_STORAGE", sqlite_url.replace("sweeper.db", "env.db"))
    assert analysis.open("tiny").trials()["valid_error"].tolist() == [0.4]
    assert analysis.open("tiny", storage="sqlite:///sweeper.db").trials()["valid_error"].tolist() == [0.3, 0.2]
    with pytest.raises(TypeError, match=r"'sqlite:///sweeper.db' is not a study's name: pass the name, and the "
                                        r"database URL as storage"):
        analysis.open("sqlite:///sweeper.db")
    with pytest.raises(BadInput, match="no study 'nope'"):
        analysis.open("nope")


def test_a_reversed_cpus_range_is_refused():
    from workers import runtime

    try:
        runtime.parse_cpus("1-0")
    except BadInput as exc:
        assert "1-0" in str(exc) and "0-1" in str(exc), exc
    else:
        raise AssertionError("--cpus 1-0 was taken as no cores at all")


@pytest.mark.parametrize("path", ["sweeper.db-artifacts/", "sweeper.db-lock", "reproduction/", "best.npz", "plots/",
                                  "report/"])
def test_what_the_readme_commands_leave_in_a_clone_is_ignored(path):
    need(shutil.which("git") is not None and (ROOT / ".git").exists(), "no git checkout to ask")
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path])
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
