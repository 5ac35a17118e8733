"""Storage fixtures: `db_url` runs a test on SQLite and on the local PostgreSQL (one class, every backend)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """A fresh, empty database URL of each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
