"""Storage URLs: which one is used, driver rewriting, masking, and bad URLs."""

from __future__ import annotations

import pytest

from storage import urls
from storage.contract.errors import BadInput


def test_flag_beats_environment_beats_default(monkeypatch):
    monkeypatch.delenv(urls.ENV, raising=False)
    assert urls.resolve(None) == "sqlite:///sweeper.db"
    monkeypatch.setenv(urls.ENV, "sqlite:///from-env.db")
    assert urls.resolve(None) == "sqlite:///from-env.db"
    assert urls.resolve("sqlite:///from-flag.db") == "sqlite:///from-flag.db"


@pytest.mark.parametrize("given", ["postgresql://u:pw@h:5432/db", "postgres://u:pw@h:5432/db",
                                   "postgresql+psycopg://u:pw@h:5432/db"])
def test_postgres_urls_use_psycopg3(given):
    assert urls.normalize(given) == "postgresql+psycopg://u:pw@h:5432/db"


def test_mask_hides_the_password_only():
    assert urls.mask("postgresql+psycopg://alice:s3cret@db.example:5432/sweeps") == \
        "postgresql+psycopg://alice:***@db.example:5432/sweeps"
    assert "s3cret" not in urls.mask("postgresql://alice:s3cret@h/db")


def test_mask_hides_a_password_given_as_a_query_parameter():
    masked = urls.mask("postgresql+psycopg://alice@h/db?password=s3cret&sslpassword=k3y&sslmode=require")
    assert masked == "postgresql+psycopg://alice@h/db?password=***&sslmode=require&sslpassword=***"


def test_not_a_url_is_bad_input():
    with pytest.raises(BadInput, match="is not a database URL"):
        urls.normalize("just-a-file.db")


def test_sqlite_path():
    assert str(urls.sqlite_path("sqlite:///a/b.db")) == "a/b.db"
    assert str(urls.sqlite_path("sqlite:////abs/b.db")) == "/abs/b.db"
    assert urls.sqlite_path("sqlite://") is None
    assert urls.sqlite_path("postgresql+psycopg://h/db") is None
