"""What every template test shares: where the template is, how a command is run, how a hook
is imported, and what cookiecutter.json offers. One of each, so a test never re-derives them."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

TEMPLATE = Path(__file__).resolve().parents[1]
PROJECT_DIR = "{{cookiecutter.project_slug}}"
PROJECT_TEMPLATE = TEMPLATE / PROJECT_DIR


def run(
    *command: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a command with the current environment plus `env`; on failure (with `check`) the
    assertion shows the command, its status and the end of both streams."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, command))} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


GIT = ("git", "-c", "user.name=template-test", "-c", "user.email=template-test@example.com",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")  # fmt: skip


def commit_all(repo: Path, message: str) -> None:
    run(*GIT, "add", "-A", cwd=repo)
    run(*GIT, "commit", "-q", "-m", message, cwd=repo)


def template_git_repo(repo: Path) -> Path:
    """The template's current files (tracked and new, not ignored) in a fresh git repository
    at `repo`, one commit: what `cookiecutter gh:...` or cruft clone, without touching this
    repository's history."""
    listed = run(
        "git", "ls-files", "-co", "--exclude-standard", "-z", "--", "cookiecutter.json", "hooks",
        PROJECT_DIR, cwd=TEMPLATE,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, listed):
        source = TEMPLATE / rel
        if source.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / rel)
    run(*GIT, "init", "-q", cwd=repo)
    commit_all(repo, "template v1")
    return repo


@cache
def load_hook(name: str) -> ModuleType:
    """hooks/<name>.py imported as a module (its `main()` is not run)."""
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def cookiecutter_json() -> dict[str, Any]:
    return dict(json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8")))


def option_choices() -> dict[str, list[Any]]:
    """Every public option with its values: the choice lists, and both values of a boolean."""
    options: dict[str, list[Any]] = {}
    for key, value in cookiecutter_json().items():
        if key.startswith("_"):
            continue
        if isinstance(value, list):
            options[key] = list(value)
        elif isinstance(value, bool):
            options[key] = [True, False]
    return options


def cuda_versions() -> dict[str, dict[str, Any]]:
    """cookiecutter.json `_versions.cuda`: CUDA version -> base image and frameworks."""
    return dict(cookiecutter_json()["_versions"]["cuda"])


def framework_compute() -> dict[str, dict[str, str]]:
    """Every framework x compute x CUDA version the version table offers, by name."""
    combos: dict[str, dict[str, str]] = {}
    for framework in option_choices()["model_framework"]:
        combos[f"{framework}-cpu"] = {"model_framework": framework, "compute": "cpu"}
        for version, row in cuda_versions().items():
            if framework in row["frameworks"]:
                combos[f"{framework}-cuda{version.replace('.', '')}"] = {
                    "model_framework": framework,
                    "compute": "cuda",
                    "cuda_version": version,
                }
    return combos
