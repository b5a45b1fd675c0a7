"""Shared helpers of the upkeep tier: tool lookup, answer sets per framework/compute."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import framework_compute

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


# Every framework x compute x CUDA version the version table of cookiecutter.json offers.
FRAMEWORK_COMPUTE: dict[str, dict[str, str]] = framework_compute()
