"""The SQLAlchemy engine of the prediction log (SQLite on the host, Postgres in Compose)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def _orjson_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Engine with short timeouts, so a database that is down fails fast instead of hanging.
    `url` is a SQLAlchemy URL (`Settings.database_url` is one already)."""
    backend = make_url(url).get_backend_name()
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        # the JSON columns (input, output) of every logged prediction: orjson encodes them in
        # about a tenth of the stdlib's time
        "json_serializer": _orjson_text,
        **kwargs,
    }
    if backend == "postgresql":
        options.setdefault("connect_args", {"connect_timeout": 3})
    elif backend == "sqlite":
        options.setdefault("connect_args", {"check_same_thread": False, "timeout": 5})
    engine = create_engine(url, **options)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine
