"""Fixtures shared by the whole suite.

* `require_env(name)`: the value of a service variable (`TEST_POSTGRES_URL`, ...); skips with a
  reason when unset, fails instead when `REQUIRE_SERVICES=1` (the template's CI sets it).
* `small_project(tmp_path_factory)`: a throw-away project root (small `params.yaml`, embedded
  SQLite tracking store) for running the real pipeline in seconds.
* `registered_model`: one small model trained through the real pipeline into a temporary SQLite
  tracking store, evaluated and promoted to `champion` (session-scoped; never move its
  aliases, copy the store instead).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "generate": {"rows": 4000},
    # Few iterations, whatever the framework (keys a framework does not use are ignored).
    "train": {"max_iter": 40, "n_estimators": 40, "epochs": 4, "batch_size": 128, "threads": 1},
    "promote": {"parity_rows": 1000},
    "tune": {"n_trials": 4, "pruner_startup_trials": 1, "pruner_warmup_steps": 1},
}


def require_env(name: str) -> str:
    """A service variable, or skip (fail under REQUIRE_SERVICES=1) when it is unset."""
    value = os.environ.get(name, "")
    if value:
        return value
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is not set but REQUIRE_SERVICES=1 requires the real service")
    pytest.skip(f"{name} is not set: no real service to test against")


def write_small_project(root: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Copy params.yaml (and the package's dvc.yaml) into `root` with small sizes; return root."""
    from ruamel.yaml import YAML

    root.mkdir(parents=True, exist_ok=True)
    yaml = YAML()
    params = yaml.load((PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for section, values in {**SMALL, **(overrides or {})}.items():
        for key, value in values.items():
            if section != "train" or key in params["train"] or key == "threads":
                params[section][key] = value
    with (root / "params.yaml").open("w", encoding="utf-8") as handle:
        yaml.dump(params, handle)
    shutil.copy(PROJECT_ROOT / "dvc.yaml", root / "dvc.yaml")
    return root


def small_context(root: Path, tracking_uri: str | None = None, **settings: Any) -> Any:
    """A pipeline Context for a small project at `root` (embedded stores under `root`)."""
    from {{ cookiecutter.package_name }}.pipeline.common import Context
    from {{ cookiecutter.package_name }}.settings import Settings

    values: dict[str, Any] = {
        "project_root": root,
        "mlflow_tracking_uri": tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
        "optuna_storage": f"sqlite:///{root / 'optuna.db'}",
        "device": "cpu",
        **settings,
    }
    return Context.load(root / "params.yaml", Settings(**values))


@pytest.fixture
def small_project(tmp_path: Path) -> Callable[..., Any]:
    """Factory: `small_project(**overrides)` -> Context of a fresh small project."""

    def make(overrides: dict[str, dict[str, Any]] | None = None, **settings: Any) -> Any:
        root = write_small_project(tmp_path / "project", overrides)
        return small_context(root, **settings)

    return make


@dataclass(frozen=True)
class RegisteredModel:
    tracking_uri: str  # sqlite:///... (artifacts in a folder next to the database)
    name: str
    version: str  # holds alias `champion` (and `challenger`)
    root: Path  # the small project (params.yaml, data/prepared/test.parquet)


def run_pipeline_in_process(ctx: Any) -> Any:
    """`run_pipeline(ctx)`, then MLflow's process-wide tracking/registry URIs as they were."""
    import mlflow

    from {{ cookiecutter.package_name }}.pipeline.workflow import run_pipeline

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        return run_pipeline(ctx)
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: back to the default
        mlflow.set_registry_uri(previous)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def registered_model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    """A small real model, trained, evaluated and promoted to champion (a few seconds)."""
    root = write_small_project(tmp_path_factory.mktemp("registered-model"))
    ctx = small_context(root, model_name="fraud-test-model")
    result = run_pipeline_in_process(ctx)
    assert result.promotion["decision"] == "promoted", result.promotion
    return RegisteredModel(
        ctx.settings.mlflow_tracking_uri, ctx.settings.model_name, result.train.version, root
    )
