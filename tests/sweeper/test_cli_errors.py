"""Every bad input: exit 2, one line on stderr that names the problem and the fix, and nothing created."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.sweeper.conftest import tiny_spec

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

GOOD = tiny_spec()
UNREACHABLE = "postgresql://sweeper:secret@127.0.0.1:1/nowhere"


def _bad(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


GRID = """
[study]
name = "posts"
dataset = "digits"
epochs = 2
repeats = 2

[params]
width = 16
init = {grid = ["glorot", "uniform01"]}

[[reference]]
params = {init = "glorot"}
valid_accuracy = 0.9

[[claim]]
text = "Glorot's range learns, [0, 1) does not."
post = "forum-init"
origin = "post"
kind = "higher"
metric = "valid_accuracy"
x = {init = "glorot"}
y = {init = "uniform01"}
"""

CASES = {
    "toml syntax": (_bad(GOOD, "[params]", "[params"), "invalid TOML"),
    "unknown top-level table": (GOOD + "\n[paramz]\n", "did you mean 'params'?"),
    "unknown study key": (_bad(GOOD, "epochs =", "epoch ="), "did you mean 'epochs'?"),
    "unknown distribution key": (_bad(GOOD, "log = true}", "lgo = true}"), "did you mean 'log'?"),
    "unknown parameter": (_bad(GOOD, "width = 16", "widht = 16"), "unknown parameter 'widht': did you mean 'width'?"),
    "low above high": (_bad(GOOD, "[0.01, 0.5]", "[0.5, 0.01]"), "impossible range"),
    "log with low 0": (_bad(GOOD, "[1e-6, 1e-3]", "[0, 1e-3]"), "a log scale needs low > 0"),
    "invalid fixed value": (_bad(GOOD, "batch_size = 64", "batch_size = 0"), "parameter batch_size=0 is invalid"),
    "unknown sampler": (_bad(GOOD, 'name = "tpe"', 'name = "tpe2"'), "unknown sampler 'tpe2'"),
    "unknown pruner": (tiny_spec(pruner='"medians"'), "unknown pruner 'medians': did you mean 'median'?"),
    "unknown model": (_bad(GOOD, 'model = "mlp"', 'model = "mpl"'), "unknown model 'mpl'"),
    "unknown dataset": (_bad(GOOD, 'dataset = "digits"', 'dataset = "digit"'), "did you mean 'digits'?"),
    "test metric": (_bad(GOOD, "[params]", 'metric = "test_error"\n[params]', ), "test set"),
    "decay steps of 0": (_bad(GOOD, "batch_size = 64", "batch_size = 64\ndecay_steps = 0"),
                         "decay_steps=0 is invalid: use an integer >= 1"),
    "epochs and steps": (_bad(GOOD, "epochs =", "steps = 100\nepochs ="), "gives both epochs and steps"),
    "claim without its post": (_bad(GRID, 'post = "forum-init"\n', ""), "post is missing"),
    "claim without its origin": (_bad(GRID, 'origin = "post"\n', ""), "write origin = \"post\""),
    "unknown post": (_bad(GRID, '"forum-init"', '"forum"'), "unknown post 'forum': did you mean 'forum-init'?"),
}


def _assert_one_line(result, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_creates_no_sqlite_file(case, sweeper, write_spec, tmp_path):
    text, needle = CASES[case]
    spec = write_spec(text)
    result = sweeper("create", spec)
    _assert_one_line(result, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_bad_spec_creates_no_study_in_postgres(pg_url, sweeper, write_spec):
    for text, needle in (CASES["unknown parameter"], CASES["low above high"]):
        _assert_one_line(sweeper("create", write_spec(text), "--storage", pg_url), needle)
    engine = sa.create_engine(pg_url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # not even Optuna's tables
    finally:
        engine.dispose()


def test_missing_spec_file(sweeper, tmp_path):
    _assert_one_line(sweeper("create", "nope.toml"), "cannot read spec nope.toml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["create", "spec.toml"], ["run", "spec.toml"], ["studies"],
                                     ["status", "tiny"], ["results", "tiny"], ["epochs", "tiny"],
                                     ["dashboard", "--port", "0"], ["worker", "tiny"]])
def test_unreachable_storage(command, sweeper, write_spec, tmp_path):
    write_spec(GOOD)
    result = sweeper(*command, "--storage", UNREACHABLE)
    _assert_one_line(result, "cannot reach storage postgresql+psycopg://sweeper:***@127.0.0.1:1/nowhere")
    assert "secret" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_unreachable_storage_from_the_environment(sweeper, write_spec):
    result = sweeper("create", write_spec(GOOD), env={"SWEEPER_STORAGE": UNREACHABLE})
    _assert_one_line(result, "cannot reach storage")


def test_storage_that_is_no_url(sweeper, write_spec):
    _assert_one_line(sweeper("create", write_spec(GOOD), "--storage", "sweeper.db"), "is not a database URL")


@pytest.mark.parametrize("command", [["status", "tyni"], ["results", "tyni"], ["epochs", "tyni"],
                                     ["worker", "tyni"]])
def test_unknown_study_suggests_the_nearest(command, sweeper, write_spec, sqlite_url):
    assert sweeper("create", write_spec(GOOD), "--storage", sqlite_url).returncode == 0
    result = sweeper(*command, "--storage", sqlite_url)
    _assert_one_line(result, "no study 'tyni' in sqlite:///")
    assert "did you mean 'tiny'?" in result.stderr


@pytest.mark.parametrize("command", [["status", "tiny"], ["results", "tiny"], ["worker", "tiny"]])
def test_reading_a_missing_sqlite_file_does_not_create_it(command, sweeper, tmp_path):
    _assert_one_line(sweeper(*command), "no database at sweeper.db")
    assert list(tmp_path.iterdir()) == []


def test_same_spec_twice_is_a_no_op_and_a_different_one_is_refused(sweeper, write_spec, sqlite_url):
    spec = write_spec(GOOD)
    first = sweeper("create", spec, "--storage", sqlite_url)
    assert first.returncode == 0 and "created study 'tiny'" in first.stderr
    again = sweeper("create", spec, "--storage", sqlite_url)
    assert again.returncode == 0 and "exists with this spec" in again.stderr
    changed = write_spec(_bad(GOOD, "epochs = 2", "epochs = 3"), "changed.toml")
    refused = sweeper("create", changed, "--storage", sqlite_url)
    _assert_one_line(refused, "study 'tiny' already exists in sqlite:///")
    assert "(epochs differ)" in refused.stderr
    renamed = sweeper("create", changed, "--storage", sqlite_url, "--name", "tiny-3-epochs")
    assert renamed.returncode == 0, renamed.stderr


def test_parquet_needs_an_output_file(sweeper, write_spec, sqlite_url):
    assert sweeper("create", write_spec(GOOD), "--storage", sqlite_url).returncode == 0
    _assert_one_line(sweeper("results", "tiny", "--storage", sqlite_url, "--format", "parquet"), "add --out")


def test_usage_errors_are_one_line_too(sweeper):
    _assert_one_line(sweeper("results"), "Missing argument 'NAME'")
    _assert_one_line(sweeper("results", "x", "--format", "xml"), "'xml' is not one of")


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 64 KiB tmpfs, filled to the last byte, holding results.csv ('old')."""
    import subprocess

    from tests.conftest import small_tmpfs

    with small_tmpfs(tmp_path / "full", "64k") as mnt:
        (mnt / "results.csv").write_text("old\n")
        subprocess.run(["dd", "if=/dev/zero", f"of={mnt / 'filler'}", "bs=4k"], capture_output=True)
        yield mnt


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_an_output_on_a_full_disk_is_one_line_and_leaves_the_old_file(fmt, sweeper, write_spec, sqlite_url,
                                                                       full_disk):
    """It was a traceback, and a truncated CSV or a 0-byte parquet in place of the old file."""
    assert sweeper("create", write_spec(tiny_spec()), "--storage", sqlite_url).returncode == 0
    out = full_disk / "results.csv"
    done = sweeper("results", "tiny", "--storage", sqlite_url, "--format", fmt, "--out", out)
    _assert_one_line(done, "No space left on device")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "results.csv"]


def _foreign_sqlite(path, *tables: str) -> bytes:
    """An SQLite file of another application with these tables; its bytes."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        for name in tables:
            conn.execute(f"create table {name} (id integer primary key, name text)")
            conn.execute(f"insert into {name} (name) values ('theirs')")
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("command", [["studies"], ["status", "tiny"], ["create", "spec.toml"]])
def test_a_foreign_studies_table_is_refused_at_once(command, sweeper, write_spec, tmp_path):
    """Its schema error was taken for a transient one: 120 s of retries, then a traceback."""
    import time

    write_spec(tiny_spec())
    before = _foreign_sqlite(tmp_path / "app.db", "studies")
    started = time.monotonic()
    done = sweeper(*command, "--storage", f"sqlite:///{tmp_path / 'app.db'}", timeout=100)
    _assert_one_line(done, "not Optuna's")
    assert time.monotonic() - started < 30
    assert (tmp_path / "app.db").read_bytes() == before


def test_create_refuses_another_applications_database_unless_told(sweeper, write_spec, tmp_path):
    """It added fourteen tables to an unrelated file and switched it to WAL for good."""
    import sqlite3

    spec = write_spec(tiny_spec())
    url = f"sqlite:///{tmp_path / 'app.db'}"
    before = _foreign_sqlite(tmp_path / "app.db", "users", "orders")
    _assert_one_line(sweeper("create", spec, "--storage", url), "tables of another application (orders, users)")
    assert (tmp_path / "app.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "spec.toml"]
    told = sweeper("create", spec, "--storage", url, env={"SWEEPER_SHARE_DATABASE": "1"})
    assert told.returncode == 0, told.stderr
    with sqlite3.connect(tmp_path / "app.db") as conn:
        assert conn.execute("select name from users").fetchall() == [("theirs",)]
    conn.close()


def test_reading_an_optuna_file_leaves_its_journal_mode(sweeper, tmp_path):
    """A plain Optuna SQLite file (rollback journal) read by sweeper stays as it was (it became WAL)."""
    import sqlite3

    import optuna

    path = tmp_path / "plain.db"
    optuna.create_study(study_name="plain", storage=f"sqlite:///{path}")
    assert sweeper("studies", "--storage", f"sqlite:///{path}").returncode == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_inputs_a_run_used_to_meet_too_late_are_one_line_before_anything_is_made(sweeper, write_spec, tmp_path, pg_url):
    """A spec that is not UTF-8, a --logs that cannot be made, an unknown backend (the study was created
    before the workers refused it), bad $SWEEPER_DB_PATIENCE and $SWEEPER_PG_SYNC_COMMIT (tracebacks)."""
    spec = write_spec(GOOD)
    (tmp_path / "latin1.toml").write_bytes(GOOD.replace("tiny", "caf\xe9").encode("latin-1"))
    _assert_one_line(sweeper("create", tmp_path / "latin1.toml"), "is not UTF-8 text (byte")
    _assert_one_line(sweeper("run", spec, "--logs", spec / "logs"), "--logs")
    _assert_one_line(sweeper("run", spec, "--backend", "tpu"), "unknown backend 'tpu': use one of jax, numba, c")
    _assert_one_line(sweeper("run", spec, env={"SWEEPER_BACKEND": "cuda"}), "unknown backend 'cuda'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latin1.toml", "spec.toml"]
    _assert_one_line(sweeper("studies", env={"SWEEPER_DB_PATIENCE": "two minutes"}),
                     "SWEEPER_DB_PATIENCE='two minutes' is not a number of seconds")
    _assert_one_line(sweeper("create", spec, "--storage", pg_url, env={"SWEEPER_PG_SYNC_COMMIT": "maybe"}),
                     "SWEEPER_PG_SYNC_COMMIT='maybe' is not one of off, on")
