"""docs/protocols.md, run as written: every block after a `<!-- protocols:example -->` marker
(bash with curl and make, Python with MLflow's and Triton's clients) against a real server on
a registry where the model has the package's default name, as after `make pipeline`."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Store
from .protocol_servers import our_server

PROJECT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- protocols:example -->\s*```(bash|python)\n(.*?)```", re.DOTALL)
DEFAULT_NAME = "{{ cookiecutter.package_name }}"  # MODEL_NAME's default: the package name


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((PROJECT / "docs" / "protocols.md").read_text(encoding="utf-8"))


def test_the_page_has_examples_of_every_protocol() -> None:
    text = "\n".join(code for _, code in blocks())
    for needle in (
        "/invocations",
        "ScoringServerClient",
        "/v2/models/",
        "tritonclient",
        "make score",
    ):
        assert needle in text, needle


def _registry_with_default_name(store: Store) -> Any:
    """The champion registered again under the package name (what `make pipeline` registers)."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(store.tracking_uri, store.tracking_uri)
    champion = client.get_model_version_by_alias(store.name, "champion")
    mlflow.set_tracking_uri(store.tracking_uri)
    try:
        client.create_registered_model(DEFAULT_NAME)
        version = client.create_model_version(DEFAULT_NAME, champion.source, run_id=champion.run_id)
        client.set_registered_model_alias(DEFAULT_NAME, "champion", version.version)
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]

    class Registered:
        tracking_uri, name = store.tracking_uri, DEFAULT_NAME

    return Registered


@pytest.mark.slow
def test_every_example_runs_as_written(store: Store, tmp_path: Path) -> None:
    model = _registry_with_default_name(store)
    workdir = tmp_path / "project"
    shutil.copytree(PROJECT / "docs", workdir / "docs")
    shutil.copy(PROJECT / "Makefile", workdir / "Makefile")
    with our_server(model, tmp_path) as url:
        port = url.rsplit(":", 1)[1]
        env = {
            **os.environ,
            "PROJECT_ROOT": str(workdir),
            "MLFLOW_TRACKING_URI": model.tracking_uri,
            "MODEL_NAME": model.name,
        }
        env.pop("REDIS_URL", None)
        for language, code in blocks():
            code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            code = code.replace('"127.0.0.1", 8000', f'"127.0.0.1", {port}')
            if language == "bash":
                # the make targets run through this environment's interpreter instead of `uv run`
                code = code.replace("make score", f"make score RUN='{sys.executable} -m'")
                command = ["bash", "-euo", "pipefail", "-c", code]
            else:
                command = [sys.executable, "-c", code]
            result = subprocess.run(
                command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, (code, result.stdout[-2000:], result.stderr[-2000:])
            assert result.stdout.strip(), code
    with (workdir / "predictions.csv").open(newline="") as handle:
        header, *rows = csv.reader(handle)
    assert header[-1] == "model_version" and len(rows) == 2, (header, rows)
