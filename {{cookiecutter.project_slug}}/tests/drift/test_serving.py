"""Drift gauges of the running server (real registry, real model, the reference profile the
training run logged): unshifted traffic stays under the threshold, shifted traffic pushes
exactly the shifted features over it, and a reload restarts the window on the new version's
reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.drift import stats
from {{ cookiecutter.package_name }}.drift.profile import ARTIFACT_DIR, build_profile
from {{ cookiecutter.package_name }}.settings import Settings

from ..serving.conftest import AUTH, Store, make_settings, running
from .traffic import SHIFTED_FEATURES, records, shifted, unshifted

pytestmark = pytest.mark.slow  # trains the session's registered model

WINDOW = 1000


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def psi_by_feature(client: TestClient, version: str) -> dict[str, float]:
    values = {}
    for labels, value in samples(client, "model_feature_drift_psi").items():
        label = dict(labels)
        assert label["version"] == version, label
        values[label["feature"]] = value
    return values


def send(client: TestClient, frame: Any) -> None:
    rows = records(frame)
    for start in range(0, len(rows), 500):
        response = client.post("/predict/batch", json={"records": rows[start : start + 500]})
        assert response.status_code == 200, response.text
    for record in rows[:5]:  # single-row requests feed the same window
        assert client.post("/predict", json=record).status_code == 200


def test_unshifted_then_shifted_traffic(
    settings_for: Callable[..., Settings], registered_model: Any
) -> None:
    version = str(registered_model.version)
    with running(settings_for(drift_window_size=WINDOW)) as client:
        assert samples(client, "model_drift_window_rows") == {(("version", version),): 0.0}
        send(client, unshifted(WINDOW, 41))
        assert samples(client, "model_drift_window_rows") == {(("version", version),): WINDOW}
        values = psi_by_feature(client, version)
        assert len(values) == 14
        assert max(values.values()) < stats.PSI_THRESHOLD, values
        (ks,) = samples(client, "model_score_drift_ks").values()
        assert ks < stats.SCORE_KS_THRESHOLD
        send(client, shifted(WINDOW, 42))  # the window now holds only shifted traffic
        values = psi_by_feature(client, version)
        over = {f for f, v in values.items() if v > stats.PSI_THRESHOLD}
        assert over == SHIFTED_FEATURES, values
        assert samples(client, "model_drift_window_capacity") == {(): WINDOW}


def register_with_reference(store: Store, profile: Any, tmp_path: Path) -> str:
    """The champion's model as a new version of a run whose reference is `profile`."""
    client = MlflowClient(store.tracking_uri, store.tracking_uri)
    champion = client.get_model_version_by_alias(store.name, "champion")
    experiment = client.create_experiment("retrained", artifact_location=tmp_path.as_uri())
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(store.tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifact(str(profile.save(tmp_path / "reference.json")), ARTIFACT_DIR)
        created = client.create_model_version(
            store.name, champion.source, run_id=run.info.run_id, tags={"flavor": "onnx"}
        )
    finally:
        mlflow.set_tracking_uri(previous)
    return str(created.version)


def test_a_reload_restarts_the_gauges_from_the_new_versions_reference(
    store: Store, tmp_path: Path
) -> None:
    # the new version's reference is the shifted population (as if retrained on it)
    reference = build_profile(shifted(8000, 43), np.random.default_rng(0).beta(0.5, 12, 2000))
    new = register_with_reference(store, reference, tmp_path / "run")
    settings = make_settings(store.tracking_uri, store.name, tmp_path, drift_window_size=WINDOW)
    with running(settings) as client:
        send(client, shifted(WINDOW, 44))
        assert psi_by_feature(client, store.version)["amount"] > stats.PSI_THRESHOLD
        store.set_champion(new)
        response = client.post("/admin/reload?wait=true", headers=AUTH)
        assert response.status_code == 200, response.text
        # right after the reload: the new version's window, empty; the old one gone
        assert samples(client, "model_drift_window_rows") == {(("version", new),): 0.0}
        assert psi_by_feature(client, new) == {}
        send(client, shifted(WINDOW, 45))
        values = psi_by_feature(client, new)
        assert max(values.values()) < stats.PSI_THRESHOLD, values


def test_drift_off_exports_nothing(settings_for: Callable[..., Settings]) -> None:
    with running(settings_for(drift_window_size=0)) as client:
        send(client, unshifted(10, 46))
        text = client.get("/metrics").text
        assert "model_drift_window" not in text
        assert "model_feature_drift_psi" not in text
