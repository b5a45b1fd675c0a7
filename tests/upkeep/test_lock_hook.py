"""The generator's lock step never fails generation: it skips on request, without uv, and
reports (instead of raising) when uv cannot resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import load_hook
from tests.upkeep.helpers import tool, tool_env

pytestmark = pytest.mark.upkeep

post = load_hook("post_gen_project")

PYPROJECT = """[project]
name = "lock-probe"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{dependency}]
"""


def test_skip_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_COMPOSE_SKIP_LOCK", "1")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(dependency=""))
    assert "ML_COMPOSE_SKIP_LOCK=1" in post.lock_dependencies(tmp_path)
    assert not (tmp_path / "uv.lock").exists()


def test_without_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert post.lock_dependencies(tmp_path).startswith("uv not found")


def test_unresolvable_dependencies_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    tool("uv")
    dependency = '"ml-compose-no-such-package-a9f3>=1"'
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(dependency=dependency))
    note = post.lock_dependencies(tmp_path)
    assert note.startswith("uv lock failed") and "make install" in note, note
    assert not (tmp_path / "uv.lock").exists()


def test_resolvable_project_is_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    tool("uv")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.format(dependency='"packaging>=23"'))
    assert post.lock_dependencies(tmp_path).startswith("uv.lock written")
    assert 'name = "packaging"' in (tmp_path / "uv.lock").read_text()
