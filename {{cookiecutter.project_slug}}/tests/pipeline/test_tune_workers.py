"""Distributed tuning survives a lost worker (a SIGKILLed process, as a preempted pod of the
Kubernetes `tuner` Job): several `tune` processes share one Optuna study in Postgres
(TEST_POSTGRES_URL), one is killed mid-trial, and the study still spends its budget, leaves no
trial RUNNING and reports the study's best parameters to MLflow (TEST_MLFLOW_TRACKING_URI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from ..conftest import require_env
from .test_services import optuna_database  # noqa: F401  (fixture)

PACKAGE = "{{ cookiecutter.package_name }}"
pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUDGET = 5
# Short heartbeats so the test waits seconds, not the minute a real deployment allows.
HEARTBEAT = {"heartbeat_seconds": 1, "heartbeat_grace_seconds": 4}


def test_killed_worker_trial_is_retried_and_budget_spent(
    small_project: Any,
    optuna_database: str,  # noqa: F811
) -> None:
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    tracking_uri = require_env("TEST_MLFLOW_TRACKING_URI")
    unique = uuid.uuid4().hex[:10]
    ctx = small_project(
        {"tune": {"n_trials": BUDGET, **HEARTBEAT}},
        tracking_uri=tracking_uri,
        model_name=f"ktest-{unique}",
        experiment_name=f"ktest-{unique}",
        optuna_storage=optuna_database,
    )
    from {{ cookiecutter.package_name }}.data.generate import generate, write_csv
    from {{ cookiecutter.package_name }}.pipeline.prepare import prepare

    g = ctx.params["generate"]
    write_csv(generate(int(g["rows"]), int(g["seed"])), ctx.paths.raw)
    prepare(ctx)
    study_name = f"ktest-{unique}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "OPTUNA_STORAGE": optuna_database,
        "MODEL_NAME": f"ktest-{unique}",
        "EXPERIMENT_NAME": f"ktest-{unique}",
        "PROJECT_ROOT": str(ctx.paths.root),
        "DEVICE": "cpu",
    }
    command = [
        sys.executable, "-m", PACKAGE, "tune", "--no-write",
        "--params", str(ctx.paths.root / "params.yaml"), "--study-name", study_name,
    ]  # fmt: skip

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    # The first worker alone, killed while it holds a RUNNING trial.
    victim = start()
    deadline = time.monotonic() + 300
    running: list[int] = []
    while not running:
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the first worker never started a trial"
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name=study_name, storage=optuna_database)
        except KeyError:
            continue  # not created yet
        running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
        if running:
            # Let its heartbeat reach the storage: a trial killed before its first heartbeat
            # cannot be told from a live one (Optuna's stale check needs one).
            time.sleep(1.5 * HEARTBEAT["heartbeat_seconds"])
            running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    killed_trial = running[0]
    # The replacement pods start after the grace period, as a rescheduled pod would; otherwise
    # fast trials can spend the budget before the dead trial is stale.
    time.sleep(HEARTBEAT["heartbeat_grace_seconds"] + HEARTBEAT["heartbeat_seconds"])

    workers = [start() for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    study = optuna.load_study(study_name=study_name, storage=optuna_database)
    trials = {t.number: t for t in study.trials}
    assert not [n for n, t in trials.items() if t.state == TrialState.RUNNING], "left RUNNING"
    assert trials[killed_trial].state == TrialState.FAIL
    retries = [
        t
        for t in trials.values()
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed_trial
    ]
    assert len(retries) == 1, "the killed worker's trial was not enqueued again"
    # The retry starts from what the lost trial had suggested (it may have died mid-way).
    assert trials[killed_trial].params.items() <= retries[0].params.items()
    assert retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    done = [t for t in trials.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) >= BUDGET

    # Every worker's parent run logged the best parameters of the study as it stood when that
    # worker finished; the last one to finish saw the study's final best.
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(f"ktest-{unique}")
    assert experiment is not None
    parents = client.search_runs(
        [experiment.experiment_id],
        f"tags.`optuna.study` = '{study_name}' and tags.`mlflow.runName` = 'tune-{study_name}'",
    )
    logged = [r for r in parents if "best_val_average_precision" in r.data.metrics]
    assert len(logged) == 2
    best = study.best_trial
    assert max(r.data.metrics["best_val_average_precision"] for r in logged) == pytest.approx(
        best.value
    )
    winner = max(logged, key=lambda r: r.data.metrics["best_val_average_precision"])
    expected = {f"best.{k}": str(v) for k, v in best.user_attrs["params"].items()}
    assert {k: v for k, v in winner.data.params.items() if k.startswith("best.")} == expected
