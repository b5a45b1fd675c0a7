"""The same pipeline code against the real services: an `mlflow server` on Postgres with
proxied artifacts (TEST_MLFLOW_TRACKING_URI) and Optuna on Postgres (TEST_POSTGRES_URL) with
two worker processes sharing one study."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import require_env

PACKAGE = "{{ cookiecutter.package_name }}"
pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def optuna_database() -> Iterator[str]:
    """A fresh database on the test Postgres for this test's study (dropped afterwards)."""
    import sqlalchemy as sa

    from {{ cookiecutter.package_name }}.settings import normalize_url

    base = sa.make_url(normalize_url(require_env("TEST_POSTGRES_URL")))
    name = f"optuna_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_pipeline_tuning_and_promotion_on_mlflow_server_and_postgres(
    small_project: Any, optuna_database: str
) -> None:
    import mlflow
    import optuna
    from mlflow.tracking import MlflowClient

    from {{ cookiecutter.package_name }}.pipeline.common import Context
    from {{ cookiecutter.package_name }}.pipeline.evaluate import evaluate
    from {{ cookiecutter.package_name }}.pipeline.promote import promote
    from {{ cookiecutter.package_name }}.pipeline.train import train
    from {{ cookiecutter.package_name }}.pipeline.workflow import run_pipeline

    tracking_uri = require_env("TEST_MLFLOW_TRACKING_URI")
    unique = uuid.uuid4().hex[:10]
    names = {
        "model_name": f"itest-{unique}",
        "experiment_name": f"itest-{unique}",
        "optuna_storage": optuna_database,
    }
    ctx = small_project(tracking_uri=tracking_uri, **names)
    client = MlflowClient(tracking_uri, tracking_uri)
    name = names["model_name"]

    first = run_pipeline(ctx)
    assert first.promotion["decision"] == "promoted"
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == first.train.version
    assert champion.tags["flavor"] == "onnx"
    # The artifacts went through the server (proxied), and come back the way the server loads them.
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion"))
    assert (local / "model.onnx").stat().st_size > 0

    # Two tuning workers share one study in Postgres; each trial is a nested run on the server.
    study = f"itest-{unique}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "OPTUNA_STORAGE": optuna_database,
        "MODEL_NAME": name,
        "EXPERIMENT_NAME": names["experiment_name"],
        "PROJECT_ROOT": str(ctx.paths.root),
        "DEVICE": "cpu",
    }
    command = [
        sys.executable,
        "-m",
        PACKAGE,
        "tune",
        "--params",
        str(ctx.paths.root / "params.yaml"),
        "--n-trials",
        "4",
        "--study-name",
        study,
    ]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    loaded = optuna.load_study(study_name=study, storage=optuna_database)
    finished = [t for t in loaded.trials if t.state.is_finished()]
    assert 4 <= len(finished) <= 5  # the budget is the study's; a worker may finish one in flight
    experiment = client.get_experiment_by_name(names["experiment_name"])
    assert experiment is not None
    trial_runs = client.search_runs([experiment.experiment_id], f"tags.`optuna.study` = '{study}'")
    parents = {
        r.data.tags.get("mlflow.parentRunId") for r in trial_runs if "optuna.trial" in r.data.tags
    }
    assert len(parents) == 2  # one parent run per worker, every trial nested under one

    # The tuned parameters are what `train` reads; the new version becomes challenger and the
    # promotion rule decides about champion (the decision is recorded on the version).
    tuned = Context.load(ctx.paths.root / "params.yaml", ctx.settings)
    second = train(tuned)
    evaluate(tuned, second.version)
    record = promote(tuned, second.version)
    assert str(client.get_model_version_by_alias(name, "challenger").version) == second.version
    expected = second.version if record["decision"] == "promoted" else first.train.version
    assert str(client.get_model_version_by_alias(name, "champion").version) == expected
    assert (
        client.get_model_version(name, second.version).tags["promotion.decision"]
        == record["decision"]
    )
    tuned.params["promote"]["min_improvement"] = -1.0
    promote(tuned, second.version)
    assert str(client.get_model_version_by_alias(name, "champion").version) == second.version
