"""Every worker follows the alias by itself (MODEL_POLL_SECONDS): move `champion` while the
server is under load and, within one interval plus the load time, every response carries the
new version with no failed request; a registry that goes away changes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Store, make_settings, running, wait_until
from .private_services import free_port, wait_for_port
from .test_reload import _mlflow_server

INTERVAL = 0.5
LOAD_SECONDS = 30  # generous: a download and an ONNX session on a busy machine


class Traffic:
    """Requests from a few threads, each answer's (time, status, version) recorded."""

    def __init__(self, client: TestClient, record: dict[str, Any], threads: int = 3) -> None:
        self.client, self.record = client, record
        self.answers: list[tuple[float, int, str | None]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.client.post("/predict", json=self.record)
            version = response.json().get("model_version") if response.status_code == 200 else None
            self.answers.append((time.monotonic(), response.status_code, version))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def metric(client: TestClient, name: str) -> list[Any]:
    text = client.get("/metrics").text
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_a_moved_alias_is_followed_without_a_failed_request(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    settings = make_settings(store.tracking_uri, store.name, tmp_path, model_poll_seconds=INTERVAL)
    new = store.add_version()
    with running(settings) as client:
        with Traffic(client, record) as traffic:
            time.sleep(3 * INTERVAL)  # a few checks that find nothing to do
            assert client.get("/model").json()["last_reload"]["state"] == "never"
            store.set_champion(new)
            moved = time.monotonic()
            wait_until(
                lambda: client.post("/predict", json=record).json()["model_version"] == new,
                INTERVAL * 1.2 + LOAD_SECONDS,
                "the new version served",
            )
            switched = time.monotonic()
            time.sleep(1)
        info = client.get("/model").json()
        assert info["last_reload"]["state"] == "ok"
        assert info["alias_poll"]["version"] == new
        assert info["alias_poll"]["interval_seconds"] == INTERVAL
        (loaded,) = metric(client, "model_loaded_version")
        assert loaded.value == float(new) and loaded.labels["worker"].endswith(f":{os.getpid()}")
    assert {status for _, status, _ in traffic.answers} == {200}, "a request failed"
    after = [version for at, _, version in traffic.answers if at > switched]
    assert after and set(after) == {new}, "an old answer after the switch"
    assert switched - moved < INTERVAL * 1.2 + LOAD_SECONDS


def test_polling_is_off_by_default(store: Store, tmp_path: Path, record: dict[str, Any]) -> None:
    with running(make_settings(store.tracking_uri, store.name, tmp_path)) as client:
        new = store.add_version()
        store.set_champion(new)
        time.sleep(2 * INTERVAL)
        assert client.post("/predict", json=record).json()["model_version"] == store.version
        assert client.get("/model").json()["alias_poll"] is None


@pytest.mark.slow
def test_registry_down_changes_nothing_then_the_next_move_is_followed(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    port = free_port()
    server = _mlflow_server(store, port, tmp_path)
    try:
        wait_for_port(port, timeout=90)
        settings = make_settings(
            f"http://127.0.0.1:{port}", store.name, tmp_path, model_poll_seconds=INTERVAL
        )
        with running(settings) as client:
            os.killpg(server.pid, signal.SIGTERM)  # MLflow goes away under load
            server.wait(timeout=30)
            with Traffic(client, record) as traffic:
                wait_until(
                    lambda: bool(metric(client, "model_alias_poll_failures_total")[0].value >= 3),
                    INTERVAL * 1.2 * 3 + 35,
                    "three failed checks",
                )
                assert client.get("/ready").status_code == 200
                assert client.get("/model").json()["alias_poll"]["error"]
            assert {status for _, status, _ in traffic.answers} == {200}
            assert {version for _, _, version in traffic.answers} == {store.version}
            # MLflow back: the next move of the alias is followed
            new = store.add_version()
            store.set_champion(new)
            server = _mlflow_server(store, port, tmp_path)
            wait_for_port(port, timeout=90)
            wait_until(
                lambda: client.get("/model").json()["version"] == new,
                INTERVAL * 1.2 + LOAD_SECONDS + 12,  # + a check that was waiting on the timeout
                "the new version after MLflow came back",
            )
            assert client.get("/model").json()["alias_poll"]["error"] is None
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
