"""`sweeper dashboard` serves the study: a real server process and real HTTP requests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request

import optuna
import pytest

from storage import rdb
from sweeper import manager, toml_spec
from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')


@pytest.fixture
def study_url(sqlite_url):
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(tiny_spec(n_trials=3))), sqlite_url)
    for value in (0.3, 0.2):
        trial = handle.study.ask(handle.spec.space)
        trial.report(value + 0.1, 1)
        trial.set_user_attr("test_error", value)
        handle.study.tell(trial, value)
    return sqlite_url


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_dashboard_serves_the_study_and_its_trials_and_leaves_them_as_they_were(study_url):
    before = _snapshot(study_url)
    server = subprocess.Popen([sys.executable, "-m", "sweeper", "dashboard", "--storage", study_url,
                               "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        match = re.search(r"http://(127\.0\.0\.1):(\d+)/", line)
        assert match, line  # bound to 127.0.0.1 by default
        base = f"http://{match[1]}:{match[2]}"
        studies = _get(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["tiny"]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}")
        assert detail["name"] == "tiny"
        assert [t["values"] for t in detail["trials"]] == [[0.3], [0.2]]
        assert detail["best_trials"][0]["number"] == 1
        assert any(a["key"] == "sweeper_spec" for a in detail["user_attrs"])
        with urllib.request.urlopen(f"{base}/dashboard", timeout=30) as page:
            assert b"<html" in page.read().lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert _snapshot(study_url) == before  # serving read the study and wrote nothing into it


def _snapshot(url: str):
    storage = rdb.open_storage(url)
    study = optuna.load_study(study_name="tiny", storage=storage)
    system = storage.get_study_system_attrs(storage.get_study_id_from_name("tiny"))
    return (study.user_attrs, system, [(t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs,
                                                   t.intermediate_values) for t in study.trials])


def test_a_busy_port_is_bad_input(study_url):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "sweeper", "dashboard", "--storage", study_url,
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use: pick another with --port"



def _request(base: str, path: str, *, method: str = "GET", host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"{base}{path}", method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("writes", [False, True])
def test_dashboard_answers_only_its_host_names_and_deletes_only_when_allowed(study_url, writes):
    """A page that rebinds its domain to 127.0.0.1 sends its own Host; anyone who reaches the port could
    DELETE a study (it answered 204 and the study was gone)."""
    server = subprocess.Popen([sys.executable, "-m", "sweeper", "dashboard", "--storage", study_url, "--port", "0",
                               *(["--allow-writes"] if writes else [])], stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        assert ("read-only" in line) != writes, line
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", line)[1]
        base = f"http://127.0.0.1:{port}"
        assert _request(base, "/api/studies")[0] == 200
        assert _request(base, "/api/studies", host=f"localhost:{port}")[0] == 200
        status, body = _request(base, "/api/studies", host=f"evil.example:{port}")
        assert status == 421 and b"not this dashboard's" in body
        study_id = optuna.load_study(study_name="tiny", storage=study_url)._study_id
        status, body = _request(base, f"/api/studies/{study_id}", method="DELETE", host=f"evil.example:{port}")
        assert status == 421
        status, body = _request(base, f"/api/studies/{study_id}", method="DELETE")
        if writes:
            assert status in (200, 204)
            assert optuna.get_all_study_names(study_url) == []
        else:
            assert status == 403 and b"--allow-writes" in body
            assert optuna.get_all_study_names(study_url) == ["tiny"]
    finally:
        server.terminate()
        server.wait(timeout=30)
