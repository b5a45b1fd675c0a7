"""docker/postgres/create-databases.sh, run as written against a real Postgres (TEST_POSTGRES_URL,
a superuser), then every role it creates connects to every database: each reaches only its own,
and none may create TEMP tables outside a database it owns (docs/production.md).

The roles are global to the server, so the test holds an advisory lock while it runs, drops
what it made afterwards and gives `postgres`/`template1` their default privileges back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from tests.conftest import require_env
from tests.serving.private_services import missing_binary

SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "postgres" / "create-databases.sh"
LOCK = 0x6D6C636F  # any constant: one test of this kind at a time per server
ROLES = ("mlflow", "optuna"{% if cookiecutter.use_prediction_logging %}, "migrate", "serving"{% endif %})
DATABASES = ("mlflow", "mlflow_auth", "optuna")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not shutil.which("psql"):  # the client the init script runs
        missing_binary("psql", "postgresql-client")
    url = make_url(require_env("TEST_POSTGRES_URL"))
    conninfo = {
        "host": url.host or "127.0.0.1",
        "port": str(url.port or 5432),
        "user": url.username or "postgres",
        "password": url.password or "",
    }
    main_db = f"privileges_{uuid.uuid4().hex[:10]}"
    admin_info = make_conninfo(**conninfo, dbname=url.database or "postgres")
    with psycopg.connect(admin_info, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        _drop(admin, main_db)
        admin.execute(f'CREATE DATABASE "{main_db}"')  # the image makes POSTGRES_DB first
        try:
            yield {**conninfo, "main": main_db, "tmp": str(tmp_path)}
        finally:
            _drop(admin, main_db)
            for database in ("postgres", "template1"):  # the server's defaults, for other users
                admin.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO PUBLIC")
            admin.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))


def _drop(admin: psycopg.Connection, main_db: str) -> None:
    for database in (*DATABASES, main_db):
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for role in ROLES:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _run_script(server: dict[str, str]) -> dict[str, str]:
    passwords = {role: uuid.uuid4().hex for role in ROLES}
    env = {
        **os.environ,
        "PGHOST": server["host"],
        "PGPORT": server["port"],
        "PGPASSWORD": server["password"],
        "POSTGRES_USER": server["user"],
        "POSTGRES_DB": server["main"],
    }
    for role, password in passwords.items():
        path = Path(server["tmp"]) / f"{role}_db_password"
        path.write_text(password)
        env[f"{role.upper()}_DB_PASSWORD_FILE"] = str(path)
    done = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return passwords


def _connect(server: dict[str, str], role: str, password: str, database: str) -> psycopg.Connection:
    return psycopg.connect(
        host=server["host"], port=server["port"], user=role, password=password, dbname=database,
        autocommit=True, connect_timeout=10,
    )  # fmt: skip


def test_each_role_reaches_only_its_own_databases(server: dict[str, str]) -> None:
    passwords = _run_script(server)
    own = {
        "mlflow": {"mlflow", "mlflow_auth"},
        "optuna": {"optuna"},
        "migrate": {server["main"]},
        "serving": {server["main"]},
    }
    every = {"postgres", "template1", *DATABASES, server["main"]}
    for role, password in passwords.items():
        for database in sorted(every):
            if database in own[role]:
                with _connect(server, role, password, database) as connection:
                    assert connection.execute("SELECT current_user").fetchone() == (role,)
            else:
                with pytest.raises(psycopg.OperationalError, match="permission denied"):
                    _connect(server, role, password, database).close()
{%- if cookiecutter.use_prediction_logging %}
    # serving may connect to the prediction-log database, and do nothing there but insert
    # into migrate's tables: no TEMP tables, no tables of its own.
    with _connect(server, "serving", passwords["serving"], server["main"]) as connection:
        for statement in ("CREATE TEMP TABLE t (x int)", "CREATE TABLE t (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
{%- endif %}
