"""docker-compose.yml and the Dockerfile: their structure, and the commands their services run, on the local PostgreSQL.

No container engine here: the YAML is parsed and checked, and the worker's and the dashboard's
commands run as the containers would run them (the image's entrypoint is `sweeper`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import urllib.request

import pytest

from sweeper import analysis, manager, toml_spec
from tests.conftest import ROOT
from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

yaml = pytest.importorskip("yaml", reason="pyyaml is in the test extra: pip install pyyaml")
PASSWORD = "c0mposePW"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _expand(text: str, env: dict) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with `env`."""

    def one(match):
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        raise AssertionError(f"compose needs {name}: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, text)


def test_compose_file_structure():
    compose = _compose()
    services = compose["services"]
    assert {"db", "worker", "worker-gpu", "dashboard"} <= set(services)
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"] and "pgdata" in compose["volumes"]
    assert services["db"]["image"].startswith("postgres:") and "healthcheck" in services["db"]
    urls = {name: services[name]["environment"]["SWEEPER_STORAGE"] for name in ("worker", "worker-gpu", "dashboard")}
    assert len(set(urls.values())) == 1 and next(iter(urls.values())).startswith("postgresql://")  # one URL
    worker = services["worker"]
    assert worker["command"][0] == "worker" and "ports" not in worker and "container_name" not in worker  # --scale
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and "--device" in gpu["command"] and "cuda" in gpu["command"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert services["dashboard"]["command"][0] == "dashboard"
    assert all(port.startswith("127.0.0.1:") for s in services.values() for port in s.get("ports", []))
    assert PASSWORD not in (ROOT / "docker-compose.yml").read_text()  # passwords come from .env
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["sweeper"\]$', dockerfile, re.M) and "FROM python:3.11" in dockerfile


def test_compose_services_commands_run_against_postgresql(pg_url):
    handle, _ = manager.create(toml_spec.parse(tomllib.loads(tiny_spec(n_trials=2, epochs=1))), pg_url)
    handle.storage.engine.dispose()
    services = _compose()["services"]
    env = {"POSTGRES_PASSWORD": PASSWORD, "STUDY": "tiny"}
    compose_url = _expand(services["worker"]["environment"]["SWEEPER_STORAGE"], env)
    assert compose_url == f"postgresql://sweeper:{PASSWORD}@db:5432/sweeper"
    # the same URL shape, pointed at the local server (trust auth ignores the password)
    url = pg_url.replace("postgresql+psycopg://postgres@", f"postgresql://postgres:{PASSWORD}@")
    environ = {**{k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}, "SWEEPER_STORAGE": url}

    command = [_expand(part, env) for part in services["worker"]["command"]]
    done = subprocess.run([sys.executable, "-m", "sweeper", *command], env=environ, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert (analysis.open("tiny", storage=pg_url).trials()["state"] == "COMPLETE").sum() == 2

    command = [_expand(part, env) for part in services["dashboard"]["command"]]
    command[command.index("--port") + 1] = "0"  # a free port here; the container's 8080 is its own
    server = subprocess.Popen([sys.executable, "-m", "sweeper", *command], env=environ, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = server.stderr.readline()
        assert PASSWORD not in line and "***" in line
        port = int(re.search(r"http://0\.0\.0\.0:(\d+)/", line).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as response:
            assert response.status == 200 and b"tiny" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
