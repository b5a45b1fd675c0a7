"""Shared fixtures: `bake(**options)` and the CI rule that a required tier never skips."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import TEMPLATE, run, template_git_repo

# Baking stays fast and offline in the matrix; the upkeep tests opt back in where they need it.
os.environ.setdefault("ML_COMPOSE_SKIP_LOCK", "1")
# Tools of this interpreter first: pyenv shims would follow a baked project's .python-version
# (3.12/3.13) and fail. uv uses this interpreter (CI hosts run 3.11, which requires-python
# admits) and never downloads one.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
os.environ.setdefault("UV_PYTHON", sys.executable)
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


@dataclass
class Baked:
    """A generated project and the answers that made it."""

    path: Path
    context: dict[str, Any]

    @property
    def package(self) -> str:
        return str(self.context["package_name"])

    def has_file(self, relative: str) -> bool:
        return (self.path / relative).exists()

    def read(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def files(self) -> set[str]:
        """Every file of the project, relative, outside .git."""
        return {
            p.relative_to(self.path).as_posix()
            for p in self.path.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(self.path).parts
        }

    def run(
        self,
        *command: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: int = 900,
    ) -> subprocess.CompletedProcess[str]:
        return run(*command, cwd=self.path, env=env, check=check, timeout=timeout)


@pytest.fixture
def bake(cookies: Any) -> Callable[..., Baked]:
    """bake(**answers) -> Baked; fails the test with cookiecutter's error when baking fails."""

    def _bake(**answers: Any) -> Baked:
        result = cookies.bake(extra_context=answers)
        if result.exception is not None:
            raise AssertionError(f"bake failed for {answers}: {result.exception!r}")
        assert result.exit_code == 0
        return Baked(Path(result.project_path), dict(result.context))

    return _bake


def render_answers(**answers: Any) -> dict[str, Any]:
    """The full context cookiecutter would use for these answers (derived values included)."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(
        context_file=str(TEMPLATE / "cookiecutter.json"), extra_context=answers
    )
    return dict(prompt_for_config(context, no_input=True))


@pytest.fixture(scope="session")
def bake_session(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Baked]:
    """Session-wide baking for expensive tiers: one project per answer set, reused."""
    from cookiecutter.main import cookiecutter

    cache: dict[str, Baked] = {}

    def _bake(**answers: Any) -> Baked:
        key = repr(sorted(answers.items()))
        if key not in cache:
            out = tmp_path_factory.mktemp("baked")
            project = cookiecutter(
                str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(out)
            )
            cache[key] = Baked(Path(project), render_answers(**answers))
        return cache[key]

    return _bake


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """A throw-away git repository holding the template's current files (one commit)."""
    return template_git_repo(tmp_path / "template")


# CI sets ML_COMPOSE_REQUIRE_ALL_TIERS=1: there, a skipped test is a failure, so a tier that
# silently lost its services or engine cannot pass as green.
REQUIRE_ALL_TIERS = os.environ.get("ML_COMPOSE_REQUIRE_ALL_TIERS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_ALL_TIERS and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but ML_COMPOSE_REQUIRE_ALL_TIERS=1: {report.longrepr}"
