"""The generated CI files pass their own linters for every combination that emits them, and
the pre-commit config stays plain YAML (so `pre-commit autoupdate` can rewrite it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.combinations import SUPPORTED
from tests.support import PROJECT_TEMPLATE
from tests.upkeep.helpers import tool, tool_env

pytestmark = pytest.mark.upkeep

WORKFLOWS = ".github/workflows"


def emitting(ci: str) -> list[str]:
    return [name for name, answers in SUPPORTED.items() if answers.get("ci", "github") == ci]


def test_matrix_covers_both_providers() -> None:
    assert emitting("github") and emitting("gitlab")


@pytest.mark.parametrize("name", emitting("github"))
def test_github_workflow_passes_actionlint_and_zizmor(name: str, bake) -> None:  # type: ignore[no-untyped-def]
    project = bake(**SUPPORTED[name])
    workflows = sorted((project.path / WORKFLOWS).glob("*.yml"))
    assert workflows, "ci=github emitted no workflow"
    assert not project.has_file(".gitlab-ci.yml")
    files = [str(w) for w in workflows]
    # shellcheck (from the template venv, first on PATH) lints every run: block too.
    tool("shellcheck")
    project.run(tool("actionlint"), "-no-color", *files, env=tool_env())
    project.run(tool("zizmor"), "--offline", "--no-progress", "--min-severity", "low", *files)
    project.run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"
    )

    for workflow in workflows:
        text = workflow.read_text(encoding="utf-8")
        uses = re.findall(r"^\s*-?\s*uses:\s*(\S+)", text, flags=re.MULTILINE)
        assert uses, f"{workflow.name} uses no action"
        for ref in uses:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not SHA-pinned"
        jobs = yaml.safe_load(text)["jobs"]
        steps = " ".join(str(step.get("run", "")) for job in jobs.values() for step in job["steps"])
        for needed in ("make lint", "make test", "compose", "build serving", "build training"):
            assert needed in steps, f"workflow lost its '{needed}' step"
        services = jobs["test"]["services"]
        assert {"postgres", "redis"} <= set(services)


@pytest.mark.parametrize("name", emitting("gitlab"))
def test_gitlab_ci_matches_its_schema(name: str, bake) -> None:  # type: ignore[no-untyped-def]
    project = bake(**SUPPORTED[name])
    assert project.has_file(".gitlab-ci.yml") and not project.has_file(".github")
    project.run(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml")
    config = yaml.safe_load(project.read(".gitlab-ci.yml"))
    assert config["stages"] == ["lint", "test", "build"]
    services = {s["alias"] for s in config["test"]["services"]}
    assert services == {"postgres", "redis"}
    script = " ".join(config["lint"]["script"] + config["test"]["script"])
    assert "make lint" in script and "make test" in script


def test_ci_files_are_not_templated() -> None:
    """Workflows are copied verbatim; pre-commit and GitLab files carry no Jinja at all."""
    for rel in (".pre-commit-config.yaml", ".gitlab-ci.yml", f"{WORKFLOWS}/ci.yml"):
        text = (PROJECT_TEMPLATE / rel).read_text(encoding="utf-8")
        assert "{%" not in text and "{#" not in text, rel
        if not rel.startswith(".github"):
            assert "{{" not in text, rel


def test_pre_commit_config_is_valid_and_complete(bake) -> None:  # type: ignore[no-untyped-def]
    project = bake()
    config = project.path / ".pre-commit-config.yaml"
    project.run(tool("pre-commit"), "validate-config", str(config))
    hooks = {
        hook["id"]
        for repo in yaml.safe_load(config.read_text(encoding="utf-8"))["repos"]
        for hook in repo["hooks"]
    }
    wanted = {
        "ruff-check", "ruff-format", "mypy", "check-yaml", "check-toml",
        "check-added-large-files", "detect-private-key", "hadolint",
    }  # fmt: skip
    assert wanted <= hooks, f"missing hooks: {sorted(wanted - hooks)}"


def test_pre_commit_local_hooks_pass_on_a_fresh_project(
    bake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The pre-commit-hooks checks that need no network run for real on a generated project.

    Remote hook repos cannot be cloned here (only PyPI is reachable), so the same checks run
    through the `pre-commit-hooks` entry points installed from PyPI.
    """
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)  # uv.lock is part of the commit
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    project = bake()
    # What pre-commit would see: the files of the generator's first commit.
    files = project.run("git", "ls-files").stdout.split()
    assert files, "the generator made no commit"
    yamls = [f for f in files if f.endswith((".yml", ".yaml"))]
    tomls = [f for f in files if f.endswith(".toml")]
    bin_dir = Path(tool("pre-commit")).parent
    config = yaml.safe_load(project.read(".pre-commit-config.yaml"))
    (large,) = [
        h for r in config["repos"] for h in r["hooks"] if h["id"] == "check-added-large-files"
    ]
    small = [f for f in files if not re.search(large.get("exclude", "^$"), f)]
    for command in (
        [str(bin_dir / "check-yaml"), "--allow-multiple-documents", *yamls],
        [str(bin_dir / "check-toml"), *tomls],
        [str(bin_dir / "detect-private-key"), *files],
        [str(bin_dir / "check-added-large-files"), "--maxkb=1024", "--enforce-all", *small],
        [str(bin_dir / "end-of-file-fixer"), *files],
        [str(bin_dir / "trailing-whitespace-fixer"), "--markdown-linebreak-ext=md", *files],
    ):
        project.run(*command)
