"""Every supported combination bakes into a clean, complete, lint-free project."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.combinations import CONDITIONAL_FILES, GENERATED_BY_HOOK, SUPPORTED, Answers
from tests.conftest import Baked, render_answers
from tests.support import PROJECT_TEMPLATE, load_hook

# Other tools use `{{ }}` too (Actions expressions, Grafana legends, `docker inspect -f`), so a
# leftover is any Jinja statement/comment or any mention of a cookiecutter variable.
UNRENDERED = re.compile(r"\{\{-?\s*cookiecutter|\{%|\{#-?\s|cookiecutter\.")


def expected_files(answers: Answers) -> set[str]:
    """The template tree with names rendered, minus the files these answers switch off."""
    context = render_answers(**answers)
    pkg = context["package_name"]
    expected = set()
    for path in PROJECT_TEMPLATE.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(PROJECT_TEMPLATE).as_posix()
        rel = rel.replace("{{cookiecutter.package_name}}", pkg)
        if all(
            keep(context)
            for pattern, keep in CONDITIONAL_FILES.items()
            if _matches(rel, pattern.format(pkg=pkg))
        ):
            expected.add(rel)
    return expected | GENERATED_BY_HOOK


def hook_secret_files(baked: Baked) -> set[str]:
    """secrets/<key>: one file per secret key that this project's .env.example names."""
    keys = {line.partition("=")[0].strip() for line in baked.read(".env.example").splitlines()}
    return {
        f"secrets/{key.lower()}" for key in keys & set(load_hook("post_gen_project").SECRET_KEYS)
    }


def _matches(rel: str, pattern: str) -> bool:
    return rel.startswith(pattern) if pattern.endswith("/") else rel == pattern


@pytest.fixture(params=list(SUPPORTED), ids=list(SUPPORTED))
def baked(request: pytest.FixtureRequest, bake) -> Baked:  # type: ignore[no-untyped-def]
    return bake(**SUPPORTED[request.param])


def test_exact_file_set(baked: Baked) -> None:
    answers = {k: v for k, v in baked.context.items() if not k.startswith("_")}
    expected = expected_files(answers) | hook_secret_files(baked)
    actual = {f for f in baked.files() if "__pycache__" not in f}
    assert hook_secret_files(baked), "the hook writes the secrets its containers read"
    assert actual - expected == set(), "files that should not exist for these answers"
    assert expected - actual == set(), "files missing for these answers"


def test_nothing_left_unrendered(baked: Baked) -> None:
    offenders = []
    for rel in sorted(baked.files()):
        try:
            text = baked.read(rel)
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if UNRENDERED.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []


# Readability of what Jinja leaves behind. A line the render produced (it is not a line of the
# template file) stays within LINE_LIMIT; Markdown table rows cannot wrap and are exempt, and
# so are data files nobody reads line by line.
LINE_LIMIT = 120
BLANK_RUN_LIMIT = 2
NOT_READ_AS_TEXT = (".json", ".lock", ".csv", ".svg")


def template_source(rel: str, package: str) -> Path:
    return PROJECT_TEMPLATE / rel.replace(package, "{{cookiecutter.package_name}}", 1)


def test_rendered_files_stay_readable(baked: Baked) -> None:
    offenders = []
    for rel in sorted(baked.files()):
        source = template_source(rel, baked.package)
        if rel.endswith(NOT_READ_AS_TEXT) or not source.is_file():
            continue  # data files, and files the hook writes (.env)
        try:
            text = baked.read(rel)
        except UnicodeDecodeError:
            continue
        authored = set(source.read_text(encoding="utf-8").splitlines())
        blanks = 0
        for number, line in enumerate(text.splitlines(), 1):
            blanks = blanks + 1 if not line.strip() else 0
            if blanks > BLANK_RUN_LIMIT:
                offenders.append(f"{rel}:{number}: {blanks} blank lines in a row")
            rendered = line not in authored
            if rendered and len(line) > LINE_LIMIT and not line.lstrip().startswith("|"):
                offenders.append(f"{rel}:{number}: {len(line)} characters: {line[:60]}...")
        if text.endswith("\n\n"):
            offenders.append(f"{rel}: blank lines at the end")
    assert offenders == [], "\n".join(offenders)


class _AnyTagLoader(yaml.SafeLoader):
    """Safe loading that accepts tool-specific tags such as GitLab's !reference."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_config_files_parse(baked: Baked) -> None:
    parsed = set()
    for rel in sorted(baked.files()):
        path = baked.path / rel
        if rel.endswith(".toml"):
            tomllib.loads(path.read_text())
        elif rel.endswith((".yaml", ".yml")):
            list(yaml.load_all(path.read_text(), Loader=_AnyTagLoader))
        elif rel.endswith(".json"):
            json.loads(path.read_text())
        elif rel == ".dvc/config":
            config = configparser.ConfigParser()
            config.read_string(path.read_text())  # DVC's config is INI
            assert config["core"]["remote"] in {
                section.split('"')[1] for section in config.sections() if "remote" in section
            }, "the default remote is not defined"
        else:
            continue
        parsed.add(rel)
    assert {"pyproject.toml", "dvc.yaml", "params.yaml", "compose.yaml", ".dvc/config"} <= parsed
    pyproject = tomllib.loads(baked.read("pyproject.toml"))
    assert pyproject["project"]["name"] == baked.context["project_slug"]
    assert pyproject["project"]["scripts"][baked.package] == f"{baked.package}.cli:main"
    assert baked.read(".python-version").strip() == baked.context["python_version"]


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_ruff_clean(baked: Baked) -> None:
    baked.run(_tool("ruff"), "check", "--no-cache", ".")
    baked.run(_tool("ruff"), "format", "--check", "--no-cache", ".")


def test_mypy_clean(baked: Baked) -> None:
    # Third-party packages are not installed in the template's environment: their imports are
    # ignored here; the slow tier runs the project's own `make lint` with everything installed.
    baked.run(
        sys.executable,
        "-m",
        "mypy",
        "--ignore-missing-imports",
        "--cache-dir",
        "/dev/null",
        "--no-incremental",
        timeout=600,
    )


def test_git_repository_with_first_commit(bake) -> None:  # type: ignore[no-untyped-def]
    project = bake()
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the hook skips `git init` by design")
    assert "Initial commit from ml-compose" in project.run("git", "log", "--oneline").stdout
    status = project.run("git", "status", "--porcelain")
    assert status.stdout == "", "generation leaves a clean work tree (.env is ignored)"
    tracked = project.run("git", "ls-files").stdout.split()
    assert ".env" not in tracked and ".env.example" in tracked


@pytest.mark.parametrize(
    ("remote", "client"),
    [
        ("local", "boto3"),
        ("s3", "boto3"),
        ("gcs", "google-cloud-storage"),
        ("azure", "azure-storage-blob"),
    ],
)
def test_the_mlflow_image_carries_the_client_of_the_projects_store(
    bake: Callable[..., Baked], remote: str, client: str
) -> None:
    """`mlflow-server` is what the MLflow image installs (docker/mlflow/install.sh)."""
    group = tomllib.loads(bake(dvc_remote=remote).read("pyproject.toml"))["dependency-groups"]
    assert any(requirement.startswith(client) for requirement in group["mlflow-server"])
