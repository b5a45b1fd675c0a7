"""Alembic migrations create exactly the table model, on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from {{ cookiecutter.package_name }}.db import Base, make_engine

from ..conftest import require_env
from .helpers import alembic_config, fresh_postgres_database, upgrade


def assert_schema_matches_models(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert "prediction_log" in inspect(connection).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    upgrade(url)
    assert_schema_matches_models(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    with engine.connect() as connection:
        assert "prediction_log" not in inspect(connection).get_table_names()
    engine.dispose()


@pytest.mark.integration
def test_postgres_upgrade() -> None:
    with fresh_postgres_database(require_env("TEST_POSTGRES_URL")) as url:
        upgrade(url)
        assert_schema_matches_models(url)
        upgrade(url)  # idempotent: a second run is a no-op
