"""Loading through a real MLflow tracking server (Postgres backend, proxied artifacts), the way
the Compose stack serves: the champion is copied there, then the server loads it over HTTP."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ..conftest import require_env
from .conftest import make_settings, running


@pytest.mark.integration
def test_loads_champion_from_tracking_server(
    registered_model: Any, tmp_path: Path, record: dict[str, Any]
) -> None:
    import mlflow
    from mlflow import MlflowClient

    remote = require_env("TEST_MLFLOW_TRACKING_URI")
    # `models:/name/version` resolves through the registry URI, a process-wide setting that
    # other tests (and the loader) move: pin it to the fixture's store for this download.
    mlflow.set_registry_uri(registered_model.tracking_uri)
    local_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{registered_model.name}/{registered_model.version}",
        dst_path=str(tmp_path / "model"),
        tracking_uri=registered_model.tracking_uri,
    )
    name = f"serving-test-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(remote, remote)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(remote)
    try:
        # Not mlflow.set_experiment: the active experiment is process-wide and a later
        # `start_run(run_id=...)` on another server (the pipeline's evaluate) would refuse it.
        experiment = client.get_experiment_by_name("serving-tests")
        experiment_id = (
            experiment.experiment_id if experiment else client.create_experiment("serving-tests")
        )
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_artifacts(local_dir, artifact_path="model")
        client.create_registered_model(name)
        version = client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        client.set_registered_model_alias(name, "champion", version.version)
    finally:
        mlflow.set_tracking_uri(previous)
    try:
        with running(make_settings(remote, name, tmp_path)) as client_app:
            response = client_app.post("/predict", json=record)
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == str(version.version)
            assert client_app.get("/model").json()["run_id"] == run.info.run_id
    finally:
        client.delete_registered_model(name)


@pytest.mark.integration
def test_an_unregistered_name_is_the_ready_reason(tmp_path: Path) -> None:
    remote = require_env("TEST_MLFLOW_TRACKING_URI")
    name = f"never-registered-{uuid.uuid4().hex[:8]}"
    with running(make_settings(remote, name, tmp_path), ready=False) as client_app:
        deadline = time.monotonic() + 30
        while (body := client_app.get("/ready").json())["reason"] == "model not loaded yet":
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
    assert body["ready"] is False
    assert f"models:/{name}@champion is not registered" in body["reason"], body
    assert "make train" in body["reason"]
    assert "\n" not in body["reason"]
