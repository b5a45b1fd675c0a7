"""`evaluate` loads a registered version under the server's trust setting: a version without
ONNX (a pickle: loading it runs code from the registry) is refused unless
TRUST_REGISTRY_CODE_EXECUTION is true, whoever registered it and however evaluate is asked."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest

from {{ cookiecutter.package_name }}.inference.registry import ModelLoadError
from {{ cookiecutter.package_name }}.pipeline.evaluate import evaluate

MARKER = "EVALUATE_TRUST_MARKER"


class RunsCodeWhenLoaded(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """What a holder of the training credential can register: code that runs on load."""

    def load_context(self, context: Any) -> None:
        if os.environ.get(MARKER):  # unset while MLflow loads it to log it
            Path(os.environ[MARKER]).write_text("ran", encoding="utf-8")

    def predict(self, context: Any, model_input: list[str], params: Any = None) -> list[str]:
        return model_input


def _register_pickle_only(tracking_uri: str, name: str) -> str:
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="native", python_model=RunsCodeWhenLoaded(), registered_model_name=name
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return str(info.registered_model_version)


def test_evaluate_refuses_a_pickle_only_version_unless_trusted(
    small_project: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = small_project()
    monkeypatch.delenv(MARKER, raising=False)
    version = _register_pickle_only(ctx.settings.mlflow_tracking_uri, ctx.settings.model_name)
    marker = tmp_path / "ran"
    monkeypatch.setenv(MARKER, str(marker))
    assert not ctx.settings.trust_registry_code_execution
    with pytest.raises(ModelLoadError, match="TRUST_REGISTRY_CODE_EXECUTION"):
        evaluate(ctx, version)
    assert not marker.exists(), "the registered pickle ran"
    # The same setting as serving's decides: trusted, the version is loaded (and its code runs).
    trusting = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"trust_registry_code_execution": True})
    )
    with contextlib.suppress(Exception):  # what follows the load (the data) is not the point
        evaluate(trusting, version)
    assert marker.read_text(encoding="utf-8") == "ran"
