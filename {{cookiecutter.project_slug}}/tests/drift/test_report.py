"""`drift-report` on a real prediction log (SQLite; Postgres with the MLflow server): the
shifted features are named, the files are written, and the summary is an MLflow run."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.db import PredictionRecord, make_engine
from {{ cookiecutter.package_name }}.drift.profile import ARTIFACT_DIR, Profile
from {{ cookiecutter.package_name }}.drift.report import parse_time
from {{ cookiecutter.package_name }}.pipeline.tracking import configure
from {{ cookiecutter.package_name }}.settings import get_settings

from ..conftest import require_env
from ..db.helpers import fresh_postgres_database, upgrade
from .traffic import SHIFTED_FEATURES, records, reference_profile, shifted, unshifted

NOW = datetime.now(UTC).replace(microsecond=0)


def write_log(url: str, frame: pd.DataFrame, at: datetime, version: str, seed: int) -> None:
    scores = np.random.default_rng(seed).beta(0.5, 12, len(frame))
    rows = [
        {
            "created_at": at,
            "request_id": uuid.uuid4().hex,
            "position": 0,
            "model_name": "fraud",
            "model_version": version,
            "input": record,
            "output": {"label": "legit", "probabilities": {"legit": 1 - p, "fraud": p}},
            "latency_ms": 1.0,
        }
        for record, p in zip(records(frame), scores.tolist(), strict=True)
    ]
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(PredictionRecord.__table__.insert(), rows)
    finally:
        engine.dispose()


def register_reference(tracking_uri: str, name: str, profile: Profile, tmp: Path) -> str:
    """A registered version whose run carries the reference profile; alias champion."""
    experiment_id = configure(tracking_uri, f"drift-test-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_artifact(str(profile.save(tmp / "reference.json")), ARTIFACT_DIR)
    client = MlflowClient(tracking_uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return str(version.version)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    def setup(database_url: str, tracking_uri: str, name: str) -> None:
        monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        monkeypatch.setenv("MODEL_NAME", name)
        monkeypatch.setenv("EXPERIMENT_NAME", name)
        get_settings.cache_clear()

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    yield setup
    get_settings.cache_clear()
    # the report points MLflow at this test's store: later tests get the default back
    mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: back to the default
    mlflow.set_registry_uri(previous)  # type: ignore[arg-type]


def check_report(out: Path, tracking_uri: str, name: str, stdout: str) -> None:
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["drifted"]) == SHIFTED_FEATURES
    assert summary["rows"] == 3000  # the shifted hour only; the earlier traffic is outside
    assert summary["score_ks"] < summary["score_ks_threshold"]
    with (out / "features.csv").open() as handle:
        table = {row["feature"]: row for row in csv.DictReader(handle)}
    assert {f for f, row in table.items() if row["drifted"] == "True"} == SHIFTED_FEATURES
    for feature in [*summary["psi"], "score"]:
        assert (out / f"{feature}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / "bins" / f"{feature}.csv").exists()
    assert "drifted: amount, merchant_category" in stdout
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(f"{name}-drift")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["drift.features"] == "amount,merchant_category"
    assert run.data.metrics["psi.amount"] == pytest.approx(summary["psi"]["amount"])
    assert run.data.metrics["features_drifted"] == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift-report")}
    assert "drift-report/amount.png" in artifacts


def run_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    since = (NOW - timedelta(minutes=30)).isoformat()
    code = main(["drift-report", "--since", since, "--out", str(tmp_path / "report"), *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_report_on_a_sqlite_log_names_the_shifted_features(
    tmp_path: Path, environment: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    upgrade(database_url)
    version = register_reference(tracking_uri, "fraud", reference_profile(), tmp_path)
    write_log(database_url, unshifted(2000, 5), NOW - timedelta(hours=3), version, 1)
    write_log(database_url, shifted(3000, 6), NOW - timedelta(minutes=5), version, 2)
    environment(database_url, tracking_uri, "fraud")
    stdout = run_report(tmp_path, capsys)
    check_report(tmp_path / "report", tracking_uri, "fraud", stdout)


def test_unshifted_traffic_reports_no_drift(
    tmp_path: Path, environment: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    upgrade(database_url)
    write_log(database_url, unshifted(3000, 7), NOW - timedelta(minutes=5), "1", 3)
    reference = reference_profile().save(tmp_path / "reference.json")
    environment(database_url, f"sqlite:///{tmp_path / 'mlflow.db'}", "fraud")
    stdout = run_report(tmp_path, capsys, "--reference", str(reference), "--no-mlflow")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["drifted"] == []
    assert summary["reference_version"] == "1"
    assert "drifted: none" in stdout


@pytest.mark.integration
def test_report_on_a_postgres_log_with_the_mlflow_server(
    tmp_path: Path, environment: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tracking_uri = require_env("TEST_MLFLOW_TRACKING_URI")
    name = f"drift-report-{uuid.uuid4().hex[:8]}"
    with fresh_postgres_database(require_env("TEST_POSTGRES_URL")) as database_url:
        upgrade(database_url)
        version = register_reference(tracking_uri, name, reference_profile(), tmp_path)
        write_log(database_url, unshifted(2000, 5), NOW - timedelta(hours=3), version, 1)
        write_log(database_url, shifted(3000, 6), NOW - timedelta(minutes=5), version, 2)
        environment(database_url, tracking_uri, name)
        stdout = run_report(tmp_path, capsys)
    check_report(tmp_path / "report", tracking_uri, name, stdout)


def test_an_empty_range_says_so(
    tmp_path: Path, environment: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    upgrade(database_url)
    reference = reference_profile().save(tmp_path / "reference.json")
    environment(database_url, f"sqlite:///{tmp_path / 'mlflow.db'}", "fraud")
    code = main(["drift-report", "--since", "1h", "--reference", str(reference), "--no-mlflow"])
    assert code == 1
    assert "no predictions logged between" in capsys.readouterr().err


def test_bad_time_arguments_name_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["drift-report", "--since", "yesterday"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since" in err
    assert "'yesterday'" in err
    assert main(["drift-report", "--since", "1h", "--until", "2h"]) == 2
    assert "must be before --until" in capsys.readouterr().err


def test_times_are_iso_or_durations_back_from_now() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_time("24h", now) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert parse_time("2w", now) == now - timedelta(weeks=2)
    assert parse_time("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_time("2026-03-01T14:00+02:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.slow
def test_report_on_traffic_the_server_logged(
    tmp_path: Path,
    environment: Any,
    capsys: pytest.CaptureFixture[str],
    registered_model: Any,
    settings_for: Any,
) -> None:
    """End to end: the reference a real training run logged, shifted traffic through the
    real server into its prediction log, the report over that log."""
    from ..db.helpers import count_records
    from ..serving.conftest import running, wait_until

    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    upgrade(database_url)
    settings = settings_for(prediction_logging=True, database_url=database_url)
    rows = records(shifted(1500, 47))
    with running(settings) as client:
        for start in range(0, len(rows), 500):
            response = client.post("/predict/batch", json={"records": rows[start : start + 500]})
            assert response.status_code == 200, response.text
        wait_until(lambda: count_records(database_url) == len(rows), 60, "the logged rows")
    environment(database_url, registered_model.tracking_uri, registered_model.name)
    stdout = run_report(tmp_path, capsys, "--no-mlflow")
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert set(summary["drifted"]) == SHIFTED_FEATURES, summary["psi"]
    assert summary["reference_version"] == str(registered_model.version)
    assert summary["rows_by_version"] == {str(registered_model.version): len(rows)}
    assert "drifted: amount, merchant_category" in stdout


def test_a_missing_reference_is_one_line(
    tmp_path: Path, environment: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    database_url = f"sqlite:///{tmp_path / 'predictions.db'}"
    upgrade(database_url)
    environment(database_url, f"sqlite:///{tmp_path / 'mlflow.db'}", "never-registered")
    assert main(["drift-report", "--no-mlflow"]) == 1
    # (log lines of alembic and MLflow come before it in the captured stream)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("cannot load the reference profile of models:/never-registered@")
    assert "never-registered not found" in line
