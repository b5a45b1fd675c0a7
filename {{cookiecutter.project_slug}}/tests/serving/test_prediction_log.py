"""Prediction log: batched writes off the request path, buffering while the database is down,
flush on shutdown, counted drops. SQLite always; Postgres from TEST_POSTGRES_URL and a private
instance that is stopped and restarted under load."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.db import PredictionRecord, make_engine
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import require_env
from ..db.helpers import count_records, fresh_postgres_database, upgrade
from .conftest import running, wait_until
from .private_services import PostgresServer


def metric(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise KeyError(name)


def log_state(client: TestClient) -> str:
    return str(client.get("/ready").json()["dependencies"]["prediction_log"])


def test_missing_table_fails_visibly_from_the_first_write_with_the_fix(
    settings_for: Callable[..., Settings], tmp_path: Path, record: dict[str, Any]
) -> None:
    """A server started without `make migrate`: /ready and /metrics say so at once."""
    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    settings = settings_for(prediction_logging=True, database_url=url)
    with running(settings) as client:
        assert log_state(client) == "ok"  # nothing written yet, nothing known to fail
        assert client.post("/predict", json=record).status_code == 200
        wait_until(lambda: log_state(client).startswith("failing"), 10, "failing in /ready")
        state = log_state(client)
        assert "no such table" in state and "make migrate" in state, state
        assert metric(client, "prediction_log_failing", reason="missing_table") == 1
        assert metric(client, "prediction_log_failing", reason="credentials") == 0
        assert client.get("/ready").status_code == 200  # serving goes on
        assert client.post("/predict", json=record).status_code == 200
        upgrade(url)  # the fix
        wait_until(lambda: log_state(client) == "ok", 30, "recovered after the migration")
        assert metric(client, "prediction_log_failing", reason="missing_table") == 0
        wait_until(lambda: metric(client, "prediction_log_written_total") == 2, 30, "2 written")
    assert count_records(url) == 2


@pytest.mark.integration
def test_wrong_credentials_fail_visibly_with_the_fix(
    settings_for: Callable[..., Settings], record: dict[str, Any]
) -> None:
    """A role that does not exist (the test server trusts local connections, so a wrong
    password alone would pass)."""
    url = make_url(require_env("TEST_POSTGRES_URL")).set(username="no_such_role_here")
    settings = settings_for(
        prediction_logging=True, database_url=url.render_as_string(hide_password=False)
    )
    with running(settings) as client:
        assert client.post("/predict", json=record).status_code == 200
        wait_until(lambda: log_state(client).startswith("failing"), 20, "failing in /ready")
        assert "DATABASE_URL" in log_state(client), log_state(client)
        assert metric(client, "prediction_log_failing", reason="credentials") == 1


def test_shutdown_gives_up_a_write_in_flight_and_counts_it(
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    record: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A stuck database (fault: the writer process frozen with SIGSTOP) cannot hold shutdown
    past PREDICTION_LOG_SHUTDOWN_SECONDS; what was not written is counted and logged."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade(url)
    settings = settings_for(
        prediction_logging=True, database_url=url, prediction_log_shutdown_seconds=1.0
    )
    with running(settings) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        logger = services.prediction_log
        logger.writer.start()
        frozen = logger.writer._process
        os.kill(frozen.pid, signal.SIGSTOP)
        # one request of three records: one batch
        assert client.post("/predict/batch", json={"records": [record] * 3}).status_code == 200
        # the batch left the buffer: it is in flight, waiting for the frozen process
        wait_until(lambda: metric(client, "prediction_log_queue_depth") == 0, 10, "in flight")
        registry = services.metrics.registry
        started = time.monotonic()
    stopped = time.monotonic() - started
    assert stopped < 8, f"shutdown took {stopped:.1f} s with a 1 s flush budget"
    assert frozen.poll() is not None  # the stuck writer was killed, not left behind
    assert registry.get_sample_value("prediction_log_dropped_total") == 3
    assert registry.get_sample_value("prediction_log_written_total") == 0
    assert "3 prediction records not written" in capfd.readouterr().err
    assert count_records(url) == 0


def test_records_are_written_with_model_and_request(
    settings_for: Callable[..., Settings], tmp_path: Path, record: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade(url)
    with running(settings_for(prediction_logging=True, database_url=url)) as client:
        one = client.post("/predict", json=record, headers={"X-Request-ID": "req-1"}).json()
        batch = client.post("/predict/batch", json={"records": [record] * 3}).json()
    # leaving the context flushed the buffer
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(PredictionRecord)).mappings().all()
    engine.dispose()
    assert len(rows) == 4
    single = next(r for r in rows if r["request_id"] == "req-1")
    assert single["model_version"] == one["model_version"]
    assert single["input"] == record
    assert single["output"]["label"] == one["label"]
    assert single["latency_ms"] > 0
    assert sorted(r["position"] for r in rows if r["request_id"] == batch["request_id"]) == [
        0,
        1,
        2,
    ]


def test_a_killed_writer_process_is_replaced_and_loses_nothing(
    settings_for: Callable[..., Settings], tmp_path: Path, record: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    upgrade(url)
    with running(settings_for(prediction_logging=True, database_url=url)) as client:
        writer = client.app.state.services.prediction_log.writer  # type: ignore[attr-defined]
        for _ in range(5):
            assert client.post("/predict", json=record).status_code == 200
        wait_until(lambda: metric(client, "prediction_log_written_total") == 5, 30, "5 written")
        first = writer._process
        first.kill()  # the fault: the child dies (OOM killer, a crash)
        first.wait(10)
        for _ in range(5):
            assert client.post("/predict", json=record).status_code == 200
        wait_until(lambda: metric(client, "prediction_log_written_total") == 10, 30, "10 written")
        assert writer._process is not None and writer._process.pid != first.pid
        assert metric(client, "prediction_log_dropped_total") == 0
    assert count_records(url) == 10


def test_overflow_is_counted_not_silent(
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    record: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # no migration: every write fails, so records pile up in a buffer of 5
    url = f"sqlite:///{tmp_path / 'unmigrated.db'}"
    settings = settings_for(
        prediction_logging=True,
        database_url=url,
        prediction_log_buffer_size=5,
        prediction_log_shutdown_seconds=0.2,
    )
    with running(settings) as client:
        for _ in range(8):
            assert client.post("/predict", json=record).status_code == 200
        # a batch in flight is put back after its failure: the counts settle asynchronously
        wait_until(lambda: metric(client, "prediction_log_dropped_total") == 3, 10, "3 drops")

        def failing() -> bool:
            state = client.get("/ready").json()["dependencies"]["prediction_log"]
            return bool(state.startswith("failing"))

        wait_until(failing, 10, "the write failure in /ready")
        wait_until(lambda: metric(client, "prediction_log_queue_depth") == 5, 10, "depth 5")
    assert "dropped" in caplog.text


@pytest.mark.integration
def test_postgres_log(settings_for: Callable[..., Settings], record: dict[str, Any]) -> None:
    with fresh_postgres_database(require_env("TEST_POSTGRES_URL")) as url:
        upgrade(url)
        with running(settings_for(prediction_logging=True, database_url=url)) as client:
            for _ in range(5):
                assert client.post("/predict", json=record).status_code == 200
            client.post("/predict/batch", json={"records": [record] * 10})
        assert count_records(url) == 15


@pytest.mark.slow
def test_postgres_stopped_and_restarted_loses_nothing(
    settings_for: Callable[..., Settings], record: dict[str, Any]
) -> None:
    postgres = PostgresServer()
    postgres.init()
    postgres.start()
    try:
        upgrade(postgres.url)
        settings = settings_for(prediction_logging=True, database_url=postgres.url)
        statuses: Counter[int] = Counter()
        with running(settings) as client:

            def burst(n: int) -> None:
                def worker() -> None:
                    for _ in range(n):
                        statuses[client.post("/predict", json=record).status_code] += 1

                threads = [threading.Thread(target=worker) for _ in range(4)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

            burst(25)
            postgres.stop()
            burst(25)
            wait_until(
                lambda: metric(client, "prediction_log_write_errors_total") > 0, 30, "a failure"
            )
            assert client.get("/ready").status_code == 200
            burst(25)
            postgres.start()
            wait_until(lambda: metric(client, "prediction_log_queue_depth") == 0, 60, "the flush")
            assert metric(client, "prediction_log_dropped_total") == 0
        assert statuses == Counter({200: 300})
        assert count_records(postgres.url) == 300
    finally:
        postgres.remove()
