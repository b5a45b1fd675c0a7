"""Finish a freshly generated project.

Runs inside the generated project directory. What depends on a combination of answers is
decided here, in tables, rather than by Jinja in the files (the CI YAML and pre-commit config
carry none; the Dockerfile and Compose files keep Jinja only for the names and the services
an option adds, and tests/test_bake.py checks every rendered file stays readable):

* which files exist (REMOVE_WHEN: answer -> paths to delete),
* which base images and wheel source the builds use (written to `.env.example` / `.env`
  and, for PyTorch, to `pyproject.toml`), from the `_versions` table of cookiecutter.json,
* the secrets of the local `.env` (random, never committed).

Tests import this module and call the functions with explicit answers and directories.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# (answer, value) -> paths (relative to the project, `{pkg}` = package name) removed when the
# answer has that value. One row per option value; the only place that knows optional files.
REMOVE_WHEN: dict[tuple[str, Any], tuple[str, ...]] = {
    ("model_framework", "sklearn"): (
        "src/{pkg}/models/xgboost_model.py",
        "src/{pkg}/models/torch_model.py",
    ),
    ("model_framework", "xgboost"): (
        "src/{pkg}/models/sklearn_model.py",
        "src/{pkg}/models/torch_model.py",
    ),
    ("model_framework", "pytorch"): (
        "src/{pkg}/models/sklearn_model.py",
        "src/{pkg}/models/xgboost_model.py",
    ),
    ("use_redis_cache", False): (
        "src/{pkg}/serving/cache.py",
        "tests/serving/test_cache.py",
        "tests/serving/test_cache_integrity.py",
        "tests/serving/test_redis_credentials.py",
        "deploy/k8s/base/files/redis-start.sh",
    ),
    ("use_prediction_logging", False): (
        "src/{pkg}/db",
        "src/{pkg}/serving/prediction_log.py",
        "tests/serving/test_prediction_log.py",
        "tests/db",
        "alembic.ini",
        "migrations",
        "src/{pkg}/drift/report.py",
        "tests/drift/test_report.py",
        "monitoring/prometheus/prediction_log_rules.yml",
        "monitoring/prometheus/tests/prediction_log_alerts_test.yml",
    ),
    ("use_kubernetes", False): ("deploy", "docs/kubernetes.md"),
    ("monitoring", "none"): ("monitoring", "tests/monitoring"),
    ("ci", "github"): (".gitlab-ci.yml",),
    ("ci", "gitlab"): (".github",),
    ("ci", "none"): (".github", ".gitlab-ci.yml"),
    ("open_source_license", "Proprietary"): (),
}

# Keys of .env.example whose placeholder is replaced by a fresh random value in .env; each one
# is also written to secrets/<key in lower case>, the file its container reads (compose.yaml).
# One credential per identity: docs/production.md lists what each may do.
SECRET_KEYS = (
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "OPTUNA_DB_PASSWORD",
    "MIGRATE_DB_PASSWORD",
    "SERVING_DB_PASSWORD",
    "REDIS_PASSWORD",
    "CACHE_HMAC_KEY",
    "ADMIN_TOKEN",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_TRAINING_PASSWORD",
    "MLFLOW_SERVING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)
PLACEHOLDER = "change-me"
BUILD_BLOCK_MARKER = "# --- build settings chosen at generation (hooks/post_gen_project.py) ---"


def paths_to_remove(answers: Mapping[str, Any]) -> list[str]:
    pkg = answers["package_name"]
    return [
        path.format(pkg=pkg)
        for (key, value), paths in REMOVE_WHEN.items()
        if answers.get(key) == value
        for path in paths
    ]


def remove_paths(project: Path, relative_paths: Iterable[str]) -> None:
    for rel in relative_paths:
        target = project / rel
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def build_settings(answers: Mapping[str, Any]) -> dict[str, str]:
    """Build args of docker/Dockerfile, read by compose.yaml through `.env`.

    The one place that decides images: CPU images (serve, mlflow, the CPU training image)
    build from python:<version>-slim; the CUDA training image from NVIDIA's runtime image.
    COMPUTE picks the base of the `training` service; COMPUTE=cpu in the environment builds a
    CPU training image of a CUDA project (laptops). `training-gpu` always builds on CUDA.
    """
    python = str(answers["python_version"])
    cuda = answers["compute"] == "cuda"
    versions = answers["_versions"]
    return {
        "PYTHON_VERSION": python,
        "CPU_BASE_IMAGE": f"python:{python}-slim",
        "CUDA_BASE_IMAGE": versions["cuda"][str(answers["cuda_version"])]["base_image"],
        "COMPUTE": "cuda" if cuda else "cpu",
    }


def torch_source(answers: Mapping[str, Any]) -> str:
    """uv index + source tables that pin torch to the CPU or the matching CUDA wheels."""
    if answers["model_framework"] != "pytorch":
        return ""
    key = str(answers["cuda_version"]) if answers["compute"] == "cuda" else "cpu"
    name = "pytorch-cpu" if key == "cpu" else f"pytorch-cu{key.replace('.', '')}"
    return (
        "\n# Chosen by hooks/post_gen_project.py: CPU and CUDA wheels are mutually exclusive.\n"
        "[[tool.uv.index]]\n"
        f'name = "{name}"\n'
        f'url = "{answers["_versions"]["torch_index"][key]}"\n'
        "explicit = true\n\n"
        "[tool.uv.sources]\n"
        "torch = { index = " + f'"{name}"' + " }\n"
    )


def render_env(example: str, secret: Any = None) -> str:
    """`.env` from `.env.example`: every secret placeholder gets a fresh random value."""
    make = secret or (lambda: secrets.token_urlsafe(32))
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SECRET_KEYS and value.strip() == PLACEHOLDER:
            line = f"{key}={make()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_build_settings(project: Path, answers: Mapping[str, Any]) -> None:
    example = project / ".env.example"
    block = "\n".join(f"{k}={v}" for k, v in build_settings(answers).items())
    text = example.read_text(encoding="utf-8").rstrip("\n")
    example.write_text(f"{text}\n\n{BUILD_BLOCK_MARKER}\n{block}\n", encoding="utf-8")
    source = torch_source(answers)
    if source:
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text(encoding="utf-8") + source, encoding="utf-8")


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Create `path` with `mode` from the first byte on (no window under the default umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    # Before any byte: O_CREAT's mode is filtered by the umask, and an existing file keeps its own.
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_env(project: Path) -> None:
    text = render_env((project / ".env.example").read_text(encoding="utf-8"))
    write_private(project / ".env", text)
    # secrets/: private folder; the files stay readable because Compose bind-mounts them
    # unchanged into containers whose users differ from the host's (docker/prod-secrets.sh).
    folder = project / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SECRET_KEYS:
            write_private(folder / key.strip().lower(), value.strip(), mode=0o644)


def lock_dependencies(project: Path) -> str:
    """Write uv.lock when uv and the package indexes are reachable; never fail generation.

    Returns a one-line note for the summary. ML_COMPOSE_SKIP_LOCK=1 skips it (the template's
    bake-matrix tests set it); without uv or network the first `make install` writes the lock.
    """
    if os.environ.get("ML_COMPOSE_SKIP_LOCK") == "1":
        return "uv.lock not written (ML_COMPOSE_SKIP_LOCK=1): `make install` creates it."
    uv = shutil.which("uv")
    if uv is None:
        return "uv not found: install uv, then `make install` creates uv.lock."
    command = [uv, "lock", "--quiet"]
    if sys.version_info >= (3, 11):
        # The lock is universal; the interpreter only builds sdists. Cookiecutter's own Python
        # spares uv a download of the .python-version interpreter just to lock.
        command += ["--python", sys.executable]
    try:
        result = subprocess.run(
            command,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=int(os.environ.get("ML_COMPOSE_LOCK_TIMEOUT", "300")),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"uv lock did not finish ({exc.__class__.__name__}): `make install` creates uv.lock."
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1][:200]
        return f"uv lock failed ({reason}): `make install` creates uv.lock later."
    return "uv.lock written: keep it in git; the images install with `uv sync --frozen`."


def init_git(project: Path) -> bool:
    """First commit when git works; a missing or misconfigured git never fails generation."""
    if shutil.which("git") is None or (project / ".git").exists():
        return False
    commands = (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        [
            "git",
            "-c",
            "user.name=ml-compose",
            "-c",
            "user.email=ml-compose@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "Initial commit from ml-compose",
        ],
    )
    for command in commands:
        if subprocess.run(command, cwd=project, capture_output=True, check=False).returncode != 0:
            return False
    return True


def next_steps(answers: Mapping[str, Any], git_done: bool) -> str:
    slug = answers["project_slug"]
    steps = [
        f"cd {slug}",
        "make install        # uv sync: train + serve + dev groups",
        "make pipeline       # example data (DVC-tracked), then dvc repro -> champion",
        "make serve          # http://127.0.0.1:8000/docs",
        "make up             # or: the whole stack in Docker Compose",
    ]
    lines = [f"\nml-compose: generated {slug}" + ("" if git_done else " (git not initialised)")]
    lines += [f"  {step}" for step in steps]
    lines.append("  .env holds freshly generated secrets and is git-ignored; never commit it.")
    return "\n".join(lines)


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    project = Path.cwd()
    remove_paths(project, paths_to_remove(answers))
    write_build_settings(project, answers)
    write_env(project)
    lock_note = lock_dependencies(project)
    git_done = os.environ.get("ML_COMPOSE_SKIP_GIT") != "1" and init_git(project)
    print(next_steps(answers, git_done))
    print(f"  {lock_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
