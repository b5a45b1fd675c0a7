"""Loading and reloading: alias moves, failed reloads, reloads under load, MLflow down at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .conftest import AUTH, Store, make_settings, running, wait_ready, wait_until
from .private_services import free_port, wait_for_port


def test_reload_follows_the_alias(store: Store, tmp_path: Path, record: dict[str, Any]) -> None:
    with running(make_settings(store.tracking_uri, store.name, tmp_path)) as client:
        assert client.post("/predict", json=record).json()["model_version"] == store.version
        new = store.add_version()
        store.set_champion(new)
        # the alias moved, but nothing changes until a reload
        assert client.post("/predict", json=record).json()["model_version"] == store.version
        accepted = client.post("/admin/reload", headers=AUTH)
        assert accepted.status_code == 202
        wait_until(lambda: client.get("/model").json()["version"] == new, 30, "reload")
        assert client.post("/predict", json=record).json()["model_version"] == new
        assert client.get("/model").json()["last_reload"]["state"] == "ok"


def test_failed_reload_keeps_the_model(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    with running(make_settings(store.tracking_uri, store.name, tmp_path)) as client:
        from mlflow import MlflowClient

        MlflowClient(store.tracking_uri, store.tracking_uri).delete_registered_model_alias(
            store.name, "champion"
        )
        failed = client.post("/admin/reload?wait=true", headers=AUTH)
        assert failed.status_code == 503
        assert "champion" in failed.json()["error"]
        assert client.get("/ready").status_code == 200
        response = client.post("/predict", json=record)
        assert response.status_code == 200 and response.json()["model_version"] == store.version
        assert client.get("/model").json()["last_reload"]["state"] == "failed"


def test_reload_under_load_fails_no_request(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    second = store.add_version()
    with running(make_settings(store.tracking_uri, store.name, tmp_path)) as client:
        statuses: Counter[int] = Counter()
        versions: set[str] = set()
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                response = client.post("/predict", json=record)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    versions.add(response.json()["model_version"])

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            for version in (second, store.version, second):
                store.set_champion(version)
                outcome = client.post("/admin/reload?wait=true", headers=AUTH)
                assert outcome.status_code == 200, outcome.text
                assert outcome.json()["version"] == version
                time.sleep(0.2)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        assert set(statuses) == {200}, statuses
        assert versions == {store.version, second}


def _mlflow_server(store: Store, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--allowed-hosts",
            f"127.0.0.1:{port},localhost:{port}",
        ],
        cwd=workdir,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers are stopped with it (process group)
    )


@pytest.mark.slow
def test_mlflow_unreachable_at_start_then_ready_without_restart(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    port = free_port()
    settings = make_settings(f"http://127.0.0.1:{port}", store.name, tmp_path)
    with running(settings, ready=False) as client:
        assert client.get("/health").status_code == 200

        def reported() -> bool:
            return "models:/" in client.get("/ready").json().get("reason", "")

        wait_until(reported, 30, "the load failure in /ready")
        assert client.get("/ready").status_code == 503
        assert client.post("/predict", json=record).status_code == 503
        server = _mlflow_server(store, port, tmp_path)
        try:
            wait_for_port(port, timeout=90)
            wait_ready(client, timeout=60)
            response = client.post("/predict", json=record)
            assert response.status_code == 200
            assert response.json()["model_version"] == store.version
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
