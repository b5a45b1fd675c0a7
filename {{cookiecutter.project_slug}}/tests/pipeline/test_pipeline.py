"""The pipeline on the host with the embedded defaults (SQLite tracking store, local artifacts)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }} import schema
from {{ cookiecutter.package_name }}.pipeline.evaluate import evaluate
from {{ cookiecutter.package_name }}.pipeline.promote import promote
from {{ cookiecutter.package_name }}.pipeline.train import train
from {{ cookiecutter.package_name }}.pipeline.workflow import run_pipeline

PACKAGE = "{{ cookiecutter.package_name }}"
PROVENANCE = (
    "git.commit",
    "git.dirty",
    "data.md5",
    "data.dvc_md5",
    "lock.sha256",
    "seed",
    "device",
    "version.mlflow",
    "version.scikit-learn",
    "python",
)


def test_registered_model_is_champion_with_onnx_flavor_and_provenance(
    registered_model: Any,
) -> None:
    client = MlflowClient(registered_model.tracking_uri, registered_model.tracking_uri)
    name, version = registered_model.name, registered_model.version
    assert str(client.get_model_version_by_alias(name, "champion").version) == version
    assert str(client.get_model_version_by_alias(name, "challenger").version) == version
    mv = client.get_model_version(name, version)
    assert mv.tags["flavor"] == "onnx"
    assert float(mv.tags["metric.average_precision"]) > 0
    assert mv.tags["promotion.decision"] == "promoted"
    run = client.get_run(mv.tags["run_id"])
    for tag in PROVENANCE:
        assert tag in run.data.tags, tag
    assert run.data.tags["seed"] == "42" and run.data.tags["device"] == "cpu"
    assert any(key.startswith("train.") for key in run.data.params)
    assert "test_roc_auc" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert len(history) > 1 and history[-1].step > history[0].step
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/roc.png",
        "plots/precision_recall.png",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
    } <= artifacts
    reports = registered_model.root / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) >= {"roc_auc", "average_precision", "f1"}
    for plot in ("roc.csv", "precision_recall.csv", "confusion.csv", "feature_importance.csv"):
        assert (reports / "plots" / plot).stat().st_size > 0
    importance = (reports / "plots" / "feature_importance.csv").read_text().splitlines()
    assert len(importance) == 1 + len(schema.FEATURES)
    assert {line.split(",")[0] for line in importance[1:]} == set(schema.FEATURE_NAMES)
    # Sorted, and shuffling the most important feature must cost the model precision.
    scores = [float(line.split(",")[1]) for line in importance[1:]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0, importance


@pytest.mark.slow
def test_champion_moves_only_when_the_challenger_wins_by_the_margin(small_project: Any) -> None:
    ctx = small_project()
    first = run_pipeline(ctx)
    assert first.promotion["decision"] == "promoted"
    # Same data, same parameters: the same score cannot beat the champion by the margin.
    again = train(ctx)
    evaluate(ctx, again.version)
    record = promote(ctx, again.version)
    assert record["decision"] == "rejected"
    client = MlflowClient(ctx.settings.mlflow_tracking_uri, ctx.settings.mlflow_tracking_uri)
    name = ctx.settings.model_name
    assert str(client.get_model_version_by_alias(name, "champion").version) == first.train.version
    assert str(client.get_model_version_by_alias(name, "challenger").version) == again.version
    tags = client.get_model_version(name, again.version).tags
    assert tags["promotion.decision"] == "rejected"
    assert tags["promotion.champion_version"] == first.train.version
    # A margin below zero accepts an equal score: champion moves.
    ctx.params["promote"]["min_improvement"] = -1.0
    assert promote(ctx, again.version)["decision"] == "promoted"
    assert str(client.get_model_version_by_alias(name, "champion").version) == again.version


@pytest.mark.slow
def test_promote_reads_the_version_and_metric_the_stages_handed_over(small_project: Any) -> None:
    """promote takes the version from reports/train.json and its metric from
    reports/metrics.json; the registry only for the champion."""
    ctx = small_project()
    first = run_pipeline(ctx)
    again = train(ctx)
    assert json.loads(ctx.paths.train_report.read_text())["version"] == again.version
    evaluate(ctx)  # the version of train.json
    metric = str(ctx.params["promote"]["metric"])
    metrics = json.loads(ctx.paths.metrics.read_text())
    metrics[metric] = 2.0  # no real score reaches it: only the file can have said so
    ctx.paths.metrics.write_text(json.dumps(metrics))
    record = promote(ctx)
    assert record["version"] == again.version and record["challenger_value"] == 2.0
    assert record["champion_version"] == first.train.version
    assert record["decision"] == "promoted"
    ctx.paths.train_report.unlink()
    with pytest.raises(FileNotFoundError, match=r"train\.json"):
        promote(ctx)


def test_unreachable_tracking_server_is_one_line_with_the_uri(small_project: Any) -> None:
    ctx = small_project()
    uri = "http://127.0.0.1:9"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run(
        [sys.executable, "-m", PACKAGE, "train", "--params", str(ctx.paths.root / "params.yaml")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: MLflow tracking server unreachable at {uri}")
    )


@pytest.mark.slow
def test_tune_logs_nested_trials_and_writes_best_params(small_project: Any) -> None:
    from ruamel.yaml import YAML

    from {{ cookiecutter.package_name }}.pipeline.prepare import prepare
    from {{ cookiecutter.package_name }}.pipeline.tune import tune

    ctx = small_project()
    run_pipeline(ctx)  # data + a first champion
    before = YAML(typ="safe").load((ctx.paths.root / "params.yaml").read_text())["train"]
    prepare(ctx)
    result = tune(ctx, n_trials=3)
    assert result["trials"] == 3
    after = YAML(typ="safe").load((ctx.paths.root / "params.yaml").read_text())["train"]
    assert {k: after[k] for k in result["best_params"]} == result["best_params"]
    assert after["seed"] == before["seed"]  # other keys kept
    assert "# " in (ctx.paths.root / "params.yaml").read_text()  # comments kept
    client = MlflowClient(ctx.settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(ctx.settings.experiment_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`optuna.trial` != ''")
    assert len(runs) == 3
    assert all("mlflow.parentRunId" in r.data.tags for r in runs)
    # the tuned parameters are what `train` reads
    ctx2 = type(ctx).load(ctx.paths.root / "params.yaml", ctx.settings)
    assert {k: ctx2.params["train"][k] for k in result["best_params"]} == result["best_params"]
    assert Path(ctx.settings.optuna_storage.removeprefix("sqlite:///")).exists()
