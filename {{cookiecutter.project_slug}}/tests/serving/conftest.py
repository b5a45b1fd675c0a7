"""Fixtures of the server tests: settings pointing at the `registered_model` store, a running
app (TestClient runs the lifespan: real loading from the registry), readiness polling."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.serving.app import create_app
from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.settings import Settings

ADMIN_TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Store:
    """A tracking store the test may change (a copy of the session's registered model)."""

    tracking_uri: str
    name: str
    version: str

    def add_version(self) -> str:
        """Register the champion's model again as a new version (no training) and return it."""
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri, self.tracking_uri)
        champion = client.get_model_version_by_alias(self.name, "champion")
        previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(self.tracking_uri)  # MLflow resolves `models:/m-...` sources here
        try:
            created = client.create_model_version(
                self.name, champion.source, run_id=champion.run_id, tags={"flavor": "onnx"}
            )
        finally:
            mlflow.set_tracking_uri(previous)
        return str(created.version)

    def add_native_version(self) -> str:
        """Register the champion run's native model (no ONNX flavor) as a new version: what
        `train` registers when the ONNX export fails its parity check."""
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient(self.tracking_uri, self.tracking_uri)
        champion = client.get_model_version_by_alias(self.name, "champion")
        previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            created = mlflow.register_model(
                f"runs:/{champion.run_id}/native", self.name, tags={"flavor": "native"}
            )
        finally:
            mlflow.set_tracking_uri(previous)
        return str(created.version)

    def set_champion(self, version: str) -> None:
        from mlflow import MlflowClient

        MlflowClient(self.tracking_uri, self.tracking_uri).set_registered_model_alias(
            self.name, "champion", version
        )


def _sqlite_path(uri: str) -> Path:
    assert uri.startswith("sqlite:///"), f"registered_model must use SQLite, got {uri}"
    return Path(uri.removeprefix("sqlite:///"))


@pytest.fixture
def store(registered_model: Any, tmp_path: Path) -> Store:
    """A private copy of the registry database (artifacts are shared, read-only)."""
    copy = tmp_path / "mlflow.db"
    shutil.copy(_sqlite_path(registered_model.tracking_uri), copy)
    return Store(f"sqlite:///{copy}", registered_model.name, str(registered_model.version))


def make_settings(tracking_uri: str, name: str, root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "project_root": root,
        "mlflow_tracking_uri": tracking_uri,
        "model_name": name,
        "model_alias": "champion",
        "database_url": f"sqlite:///{root / 'predictions.db'}",
        "redis_url": None,
        "admin_token": ADMIN_TOKEN,
        "unknown_category": "reject",
        "prediction_logging": False,
        "model_retry_initial_seconds": 0.1,
        "model_retry_max_seconds": 0.5,
        "prediction_log_flush_seconds": 0.05,
        "prediction_log_shutdown_seconds": 5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings_for(registered_model: Any, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the session's registered model (read-only use), with overrides."""

    def build(**overrides: Any) -> Settings:
        return make_settings(
            registered_model.tracking_uri, registered_model.name, tmp_path, **overrides
        )

    return build


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    wait_until(lambda: client.get("/ready").status_code == 200, timeout, "readiness")


@contextmanager
def running(settings: Settings, ready: bool = True) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        if ready:
            wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def app_client(
    registered_model: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    """One server per protocol test module, on the shared registered model."""
    root = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    settings = make_settings(
        registered_model.tracking_uri, registered_model.name, root, max_batch_size=100
    )
    with running(settings) as client:
        yield client


@pytest.fixture
def client(settings_for: Callable[..., Settings]) -> Iterator[TestClient]:
    with running(settings_for()) as client:
        yield client


@pytest.fixture
def record() -> dict[str, Any]:
    return example_record()


@pytest.fixture(scope="session")
def served_url(registered_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `serve` process on the session's model (the protocol tests' real clients)."""
    from .protocol_servers import our_server

    with our_server(registered_model, tmp_path_factory.mktemp("served")) as url:
        yield url
