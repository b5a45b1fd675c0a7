"""Shared helpers of the upkeep tier: tool lookup, answer sets per framework/compute."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# The template's venv (uv run / make test) holds every tool this tier uses; its bin comes first
# so a pyenv shim or an unrelated global install never answers instead.
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Absolute path of a command-line tool; skips (fails in CI) with the reason when absent."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed: `make install` (template dev group) provides it")
    return found


def tool_env() -> dict[str, str]:
    """Environment whose PATH starts with the template venv (uv, shellcheck, pre-commit...)."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


# Every framework x compute x CUDA version the pre-generation hook accepts.
FRAMEWORK_COMPUTE: dict[str, dict[str, str]] = {
    "sklearn-cpu": {"model_framework": "sklearn", "compute": "cpu"},
    "xgboost-cpu": {"model_framework": "xgboost", "compute": "cpu"},
    "xgboost-cuda126": {"model_framework": "xgboost", "compute": "cuda", "cuda_version": "12.6"},
    "xgboost-cuda128": {"model_framework": "xgboost", "compute": "cuda", "cuda_version": "12.8"},
    "pytorch-cpu": {"model_framework": "pytorch", "compute": "cpu"},
    "pytorch-cuda126": {"model_framework": "pytorch", "compute": "cuda", "cuda_version": "12.6"},
    "pytorch-cuda128": {"model_framework": "pytorch", "compute": "cuda", "cuda_version": "12.8"},
    "pytorch-cuda130": {"model_framework": "pytorch", "compute": "cuda", "cuda_version": "13.0"},
}
