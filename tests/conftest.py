"""Shared fixtures: real MNIST files from ../shared and a fresh database on the local PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

from workers import runtime

runtime.configure()  # at the start of the test process, as the CLIs do: float32, the default backend

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("SWEEPER_TEST_MNIST", ROOT.parent / "shared" / "data" / "mnist"))
PG_ADMIN = os.environ.get("SWEEPER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip with a one-line reason on a user's machine; fail under CI, where everything must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def small_tmpfs(mnt: Path, size: str):
    """A tmpfs of `size` (e.g. "64k") mounted at `mnt` (created) for a full disk; skipped where no tmpfs
    can be mounted (not root), failed under CI. Unmounted afterwards."""
    import subprocess

    mnt.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                             text=True)
    need(mounted.returncode == 0, f"cannot mount a small tmpfs for a full disk: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The 34,000 real MNIST images in IDX files (../shared/data/mnist)."""
    need((MNIST_DIR / "train-images-idx3-ubyte.gz").exists(), f"no MNIST files at {MNIST_DIR}")
    return MNIST_DIR


def _pg_admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_available() -> bool:
    """Whether the local PostgreSQL answers (skip, or fail under CI, when it does not)."""
    import sqlalchemy as sa

    try:
        with _pg_admin_engine().connect() as conn:
            conn.execute(sa.text("select 1"))
        ok = True
    except Exception:  # noqa: BLE001 - any failure means 'not available'
        ok = False
    need(ok, f"no PostgreSQL server at {PG_ADMIN}")
    return ok


@pytest.fixture
def pg_url(pg_available) -> str:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"sweeper_test_{uuid.uuid4().hex[:10]}"
    engine = _pg_admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    yield url
    with engine.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'sweeper.db'}"


@pytest.fixture(autouse=True)
def _database_up():
    """storage.retry's view of the database is per process: one test's outage is not the next one's."""
    from storage import retry

    yield
    retry.outage.since = None
    retry.outage.abandon.clear()
