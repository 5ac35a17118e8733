"""Hostile files and records on the control side (issue 20): a study name edited in the database writes no
file outside --out, an edited artifact id reads nothing, outputs follow the umask and spare read-only
files, a spec that is not a short regular file is refused. Real databases, real CLI processes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from storage.studies import ATTR
from tests.clitools import one_line, sweeper_cli
from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')


def _cli(*args, cwd: Path, umask: int = 0o022, timeout: float = 120, memory: int | None = None):
    return sweeper_cli(*args, cwd=cwd, umask=umask, timeout=timeout, memory=memory)


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    """A folder with s.db (the tiny study, 2 trials of 1 epoch, run by a real worker) and its kept weights."""
    folder = tmp_path_factory.mktemp("ran")
    (folder / "spec.toml").write_text(tiny_spec(n_trials=2, epochs=1))
    done = _cli("run", "spec.toml", "--storage", f"sqlite:///{folder / 's.db'}", cwd=folder, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


@pytest.fixture
def db(ran, tmp_path) -> tuple[str, Path]:
    """(URL, path) of this test's own copy of the run's database and kept weights."""
    shutil.copy(ran / "s.db", tmp_path / "s.db")
    shutil.copytree(ran / "s.db-artifacts", tmp_path / "s.db-artifacts")
    return f"sqlite:///{tmp_path / 's.db'}", tmp_path / "s.db"


# --- 1. a study name from the database becomes a file name only when it is a plain name ---------------------


@pytest.mark.parametrize("command", ["plot", "report"])
def test_a_study_name_edited_in_the_database_writes_nothing_outside_out(db, tmp_path, command):
    url, path = db
    with sqlite3.connect(path) as conn:
        (value,) = conn.execute("select value_json from study_user_attributes where key = ?", (ATTR,)).fetchone()
        spec = json.loads(value)
        spec["name"] = "../../../tmp/x"
        conn.execute("update study_user_attributes set value_json = ? where key = ?", (json.dumps(spec), ATTR))
    escape = tmp_path / "a" / "tmp"  # where out/.sweeper-report-XXX/../../../tmp/x.*.png lands
    escape.mkdir(parents=True)
    out = tmp_path / "a" / "b" / "out"
    out.parent.mkdir()
    done = _cli(command, "tiny", "--storage", url, "--out", out, cwd=tmp_path)
    one_line(done, "'../../../tmp/x'", "cannot name a file")
    assert not list(tmp_path.rglob("*.png")), "a PNG was written"
    assert not list(escape.iterdir()) and not list(out.glob("*")) and done.stdout == ""


# --- 3. outputs follow the umask; a read-only file is not replaced --------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
@pytest.mark.parametrize("command", ["results", "epochs", "export"])
def test_outputs_get_the_mode_the_umask_gives(db, tmp_path, command, umask, mode):
    url, _ = db
    out = tmp_path / ("w.npz" if command == "export" else "t.csv")
    args = ("--format", "csv") if command != "export" else ()
    done = _cli(command, "tiny", "--storage", url, *args, "--out", out, cwd=tmp_path, umask=umask)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == mode
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left"


@pytest.mark.parametrize("command", ["results", "export"])
def test_a_read_only_output_is_refused_and_left_as_it_was(db, tmp_path, command):
    url, _ = db
    out = tmp_path / ("w.npz" if command == "export" else "t.csv")
    out.write_text("kept")
    out.chmod(0o444)
    args = ("--format", "csv") if command != "export" else ()
    done = _cli(command, "tiny", "--storage", url, *args, "--out", out, cwd=tmp_path)
    one_line(done, str(out), "read-only", "chmod u+w")
    assert out.read_text() == "kept" and out.stat().st_mode & 0o777 == 0o444
    assert not list(tmp_path.glob(".*.tmp"))


# --- 4. an artifact id edited in the database reads no file ---------------------------------------------------


@pytest.mark.parametrize("artifact_id", ["../secret", "../../secret", None, 7, ""])
def test_export_of_an_edited_artifact_id_isone_line(db, tmp_path, artifact_id):
    url, path = db
    (tmp_path / "secret").write_text("not a weights file")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("select trial_system_attribute_id, value_json from trial_system_attributes "
                            "where key like 'artifacts:%'").fetchall()
        assert rows, "the run kept no weights"
        for row_id, value in rows:
            meta = json.loads(json.loads(value))  # Optuna stores the meta as a JSON string, as JSON
            meta["artifact_id"] = artifact_id
            conn.execute("update trial_system_attributes set value_json = ? where trial_system_attribute_id = ?",
                         (json.dumps(json.dumps(meta)), row_id))
    out = tmp_path / "w.npz"
    done = _cli("export", "tiny", "--storage", url, "--out", out, cwd=tmp_path)
    one_line(done, "artifact id", "not a plain file name")
    assert not out.exists()


# --- 5. a spec is a short regular file -------------------------------------------------------------------------


def test_create_refuses_dev_zero(tmp_path):
    # (a limit on memory: the reader this replaces read /dev/zero until it ran out)
    done = _cli("create", "/dev/zero", "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path, timeout=60,
                memory=1 << 30)
    one_line(done, "/dev/zero", "not a regular file")
    assert not (tmp_path / "s.db").exists()


def test_create_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    done = _cli("create", fifo, "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path, timeout=60)
    one_line(done, str(fifo), "not a regular file")


def test_create_refuses_a_spec_over_one_mib(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(tiny_spec() + ("# padding\n" * (2**20 // 10 + 1)))  # valid TOML, only too long
    done = _cli("create", spec, "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    one_line(done, str(spec), "larger than 1 MiB")
    assert not (tmp_path / "s.db").exists()
