"""Reject bad answers before cookiecutter writes anything.

Cookiecutter renders this file with the answers, runs it inside the (still empty) project
directory and deletes that directory when it exits non-zero. Every check is a pure function
of the answers so tests import this module and call `validate()` directly.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

# Import names of what a generated project installs: a package named like one of these
# would shadow it (``import mlflow`` would import the user's project).
DEPENDENCY_IMPORTS = frozenset(
    {
        "alembic",
        "dvc",
        "fastapi",
        "httpx",
        "matplotlib",
        "mlflow",
        "mypy",
        "numpy",
        "onnx",
        "onnxruntime",
        "optuna",
        "pandas",
        "prometheus_client",
        "psycopg",
        "pydantic",
        "pydantic_settings",
        "pytest",
        "redis",
        "ruff",
        "skl2onnx",
        "sklearn",
        "scipy",
        "sqlalchemy",
        "starlette",
        "tenacity",
        "torch",
        "uvicorn",
        "xgboost",
        "yaml",
        "test",
        "tests",
        "src",
        "app",
    }
)

# The choice lists of cookiecutter.json, checked again here because replayed answers bypass
# cookiecutter's own check (tests/test_hooks.py fails when the two differ). The CUDA versions
# and which framework has wheels for each come from the `_versions` table of cookiecutter.json.
CHOICES: dict[str, tuple[str, ...]] = {
    "open_source_license": ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"),
    "python_version": ("3.13", "3.12", "3.11"),
    "model_framework": ("sklearn", "xgboost", "pytorch"),
    "compute": ("cpu", "cuda"),
    "monitoring": ("none", "prometheus-grafana"),
    "dvc_remote": ("local", "s3", "gcs", "azure", "ssh"),
    "ci": ("github", "gitlab", "none"),
}
BOOLEANS = ("use_redis_cache", "use_prediction_logging", "use_kubernetes")


def cuda_table(a: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """cookiecutter.json `_versions.cuda`: CUDA version -> base image and frameworks."""
    return dict((a.get("_versions") or {}).get("cuda", {}))


def choices(a: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {**CHOICES, "cuda_version": tuple(cuda_table(a))}


SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _check_identity(a: Mapping[str, Any]) -> list[str]:
    errors = []
    name = str(a.get("project_name", ""))
    if not name.strip():
        errors.append("project_name is empty: give a human-readable name such as 'Fraud Detector'.")
    slug = str(a.get("project_slug", ""))
    if (name.strip() or slug) and not SLUG_RE.match(slug):
        errors.append(
            f"project_slug {slug!r} is not a valid slug: use lowercase ASCII letters, digits "
            "and single dashes, starting with a letter (e.g. project_slug=fraud-detector)."
        )
    pkg = str(a.get("package_name", ""))
    if name.strip() or pkg:
        if not pkg.isidentifier() or not pkg.isascii():
            errors.append(
                f"package_name {pkg!r} is not a Python identifier: use lowercase letters, digits "
                "and underscores, starting with a letter (e.g. package_name=fraud_detector)."
            )
        elif keyword.iskeyword(pkg) or keyword.issoftkeyword(pkg):
            errors.append(f"package_name {pkg!r} is a Python keyword: set another package_name.")
        elif pkg in sys.stdlib_module_names:
            errors.append(
                f"package_name {pkg!r} shadows the standard-library module '{pkg}': "
                f"set another package_name (e.g. package_name=my_{pkg})."
            )
        elif pkg in DEPENDENCY_IMPORTS:
            errors.append(
                f"package_name {pkg!r} shadows a dependency or tool of the generated project "
                f"('import {pkg}' would import your package): set another package_name."
            )
    if not str(a.get("author_name", "")).strip():
        errors.append("author_name is empty: give a person or team name.")
    email = str(a.get("author_email", ""))
    if not EMAIL_RE.match(email):
        errors.append(
            f"author_email {email!r} is not an e-mail address (expected name@domain.tld)."
        )
    description = str(a.get("description", ""))
    if any(ord(ch) < 32 for ch in description):
        errors.append("description must be a single line without control characters.")
    return errors


def _check_choices(a: Mapping[str, Any]) -> list[str]:
    errors = []
    for key, allowed in choices(a).items():
        if a.get(key) not in allowed:
            errors.append(
                f"{key} {a.get(key)!r} is not supported: choose one of {', '.join(allowed)}."
            )
    for key in BOOLEANS:
        if not isinstance(a.get(key), bool):
            errors.append(f"{key} must be true or false, got {a.get(key)!r}.")
    return errors


def _check_compute(a: Mapping[str, Any]) -> list[str]:
    if a.get("compute") != "cuda":
        return []
    framework = a.get("model_framework")
    if framework == "sklearn":
        return [
            "compute=cuda needs a GPU framework: scikit-learn has no GPU path. "
            "Use model_framework=xgboost or pytorch, or compute=cpu."
        ]
    table = cuda_table(a)
    wheels = tuple(v for v, row in table.items() if framework in row["frameworks"])
    if a.get("cuda_version") in table and a.get("cuda_version") not in wheels:
        return [
            f"cuda_version {a.get('cuda_version')} has no {framework} wheels: "
            f"choose one of {', '.join(wheels)}."
        ]
    return []


CHECKS: tuple[Callable[[Mapping[str, Any]], list[str]], ...] = (
    _check_identity,
    _check_choices,
    _check_compute,
)


def validate(answers: Mapping[str, Any]) -> list[str]:
    """Every problem with the answers, one line each; empty when they can be generated."""
    return [error for check in CHECKS for error in check(answers)]


def main() -> int:
    answers = json.loads(r"""{{ cookiecutter | tojson }}""")
    errors = validate(answers)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
