"""uv.lock: the generator writes it, it resolves for every framework/compute combination, and
the serve group (what the serving image installs) pulls no training-only package.

download.pytorch.org is not reachable from this project's machines (PyPI is). The PyTorch
combinations therefore lock with the hook's torch index overridden, under its own name, to
ML_COMPOSE_TORCH_INDEX_OVERRIDE (default: PyPI), which proves every other constraint resolves
together with `torch` from a PEP 503 index. Set ML_COMPOSE_TORCH_INDEX_OVERRIDE= (empty) where
download.pytorch.org is reachable to lock against the real CPU/CUDA wheel indexes.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from typing import Any

import pytest

from tests.conftest import Baked
from tests.support import cookiecutter_json
from tests.upkeep.helpers import FRAMEWORK_COMPUTE, tool, tool_env

pytestmark = pytest.mark.upkeep

# Packages only training needs; none may reach the serving image.
TRAINING_ONLY = frozenset(
    {"pandas", "scikit-learn", "xgboost", "xgboost-cpu", "torch", "dvc", "optuna", "matplotlib"}
)
# What the train group must bring for each framework (the lock proves it resolves).
FRAMEWORK_PACKAGE = {"sklearn": "scikit-learn", "xgboost": "xgboost", "pytorch": "torch"}
TORCH_INDEX_URL: dict[str, str] = cookiecutter_json()["_versions"]["torch_index"]
OVERRIDE = os.environ.get("ML_COMPOSE_TORCH_INDEX_OVERRIDE", "https://pypi.org/simple")


def lock_command(project: Baked, *extra: str) -> list[str]:
    command = [tool("uv"), "lock", "--python", sys.executable, *extra]
    settings = tomllib.loads(project.read("pyproject.toml")).get("tool", {}).get("uv", {})
    for index in settings.get("index", []):
        if OVERRIDE:
            command += ["--index", f"{index['name']}={OVERRIDE}"]
    return command


def uv_lock(project: Baked, *extra: str) -> None:
    project.run(*lock_command(project, *extra), env=tool_env(), timeout=600)


def locked_packages(project: Baked) -> dict[str, list[dict[str, Any]]]:
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in tomllib.loads(project.read("uv.lock"))["package"]:
        packages.setdefault(package["name"], []).append(package)
    return packages


def exported_names(project: Baked, *groups: str) -> set[str]:
    """Package names `uv sync --frozen --no-default-groups --group ...` would install."""
    command = [
        tool("uv"),
        "export",
        "--frozen",
        "--no-default-groups",
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
    ]
    for group in groups:
        command += ["--group", group]
    out = project.run(*command, env=tool_env()).stdout
    names = {re.split(r"[=<>~!; @\[]", line.strip(), maxsplit=1)[0] for line in out.splitlines()}
    return {name.lower().replace("_", "-") for name in names if name and not name.startswith("#")}


@pytest.mark.parametrize("combo", list(FRAMEWORK_COMPUTE))
def test_lock_resolves_and_serve_group_stays_lean(combo: str, bake) -> None:  # type: ignore[no-untyped-def]
    answers = FRAMEWORK_COMPUTE[combo]
    project = bake(**answers)
    assert not project.has_file("uv.lock"), "bake matrix sets ML_COMPOSE_SKIP_LOCK=1"
    uv_lock(project)
    packages = locked_packages(project)

    framework = answers["model_framework"]
    assert FRAMEWORK_PACKAGE[framework] in packages or (
        framework == "xgboost" and "xgboost-cpu" in packages
    ), f"{combo}: the train group lost its framework"
    if framework == "pytorch":
        key = answers.get("cuda_version", "cpu") if answers["compute"] == "cuda" else "cpu"
        (index,) = tomllib.loads(project.read("pyproject.toml"))["tool"]["uv"]["index"]
        assert index["url"] == TORCH_INDEX_URL[key], "hook chose the wrong torch wheel index"
        assert index["explicit"] is True, "only torch may come from the PyTorch index"
        sources = {p["source"].get("registry") for p in packages["torch"]}
        assert sources == {OVERRIDE or TORCH_INDEX_URL[key]}, sources
        other = {
            name
            for name, versions in packages.items()
            for p in versions
            if name != "torch" and p.get("source", {}).get("registry") == (OVERRIDE or index["url"])
        }
        assert OVERRIDE == "https://pypi.org/simple" or not other, other
    if answers["compute"] == "cpu" and framework == "xgboost":
        # Linux wheel without the 470 MB NCCL payload; the CUDA build only for GPU projects.
        assert "nvidia-nccl-cu12" not in exported_names(project, "train")

    serve = exported_names(project, "serve")
    assert serve, "serve group exported nothing"
    assert "onnxruntime" in serve and "fastapi" in serve
    leaked = serve & TRAINING_ONLY
    assert not leaked, f"{combo}: the serve group pulls training-only packages {sorted(leaked)}"

    # The lock is consistent with pyproject.toml (what CI's UV_LOCKED=1 enforces).
    uv_lock(project, "--check")


def test_lower_bounds_resolve_together(bake) -> None:  # type: ignore[no-untyped-def]
    """Every direct dependency at its lower bound resolves (the bounds are coherent)."""
    project = bake()
    uv_lock(project, "--resolution", "lowest-direct")
    assert "mlflow" in locked_packages(project)


def test_generator_writes_the_lock_into_the_first_commit(
    bake, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    project = bake()
    assert project.has_file("uv.lock"), "post-generation hook did not write uv.lock"
    committed = project.run("git", "ls-files", "uv.lock").stdout.strip()
    assert committed == "uv.lock", "uv.lock is not part of the initial commit"
    project.run(tool("uv"), "lock", "--check", "--python", sys.executable, env=tool_env())


def test_mlflow_server_image_and_clients_share_one_pinned_version(bake) -> None:  # type: ignore[no-untyped-def]
    """The tracking server image installs group mlflow-server from uv.lock, hash-checked; the
    same lock gives training (mlflow) and serving (mlflow-skinny) the server's version."""
    version = cookiecutter_json()["_versions"]["mlflow"]
    project = bake()
    uv_lock(project)
    packages = locked_packages(project)
    for name in ("mlflow", "mlflow-skinny"):
        assert [p["version"] for p in packages[name]] == [version], (name, packages[name])
    assert {"mlflow", "mlflow-skinny"} <= exported_names(project, "train", "serve")
    exported = project.run(
        tool("uv"), "export", "--frozen", "--only-group", "mlflow-server", "--no-emit-project",
        env=tool_env(),
    ).stdout  # fmt: skip
    requirements = [r for r in re.split(r"\n(?=\S)", exported) if r and not r.startswith("#")]
    assert any(r.startswith(f"mlflow=={version} ") for r in requirements), exported[:2000]
    assert all("--hash=sha256:" in r for r in requirements), "--require-hashes needs every hash"
    dockerfile = project.read("docker/Dockerfile")
    assert "docker/mlflow/install.sh" in dockerfile and "MLFLOW_VERSION" not in dockerfile
    assert "--require-hashes" in project.read("docker/mlflow/install.sh")
