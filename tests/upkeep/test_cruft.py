"""Template updates: a project baked with cruft from a git checkout of the template takes a
later template commit through `cruft update` without conflicts, keeping the user's own edits
and its per-project files (.env secrets, .git, uv.lock); a project baked with plain
cookiecutter can be linked afterwards with `cruft link`.

The template is copied into a throw-away git repository: nothing is committed to the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import PROJECT_DIR, commit_all, run
from tests.upkeep.helpers import tool, tool_env

pytestmark = pytest.mark.upkeep

ANSWERS = {"project_name": "Cruft Check", "ci": "github"}


def sh(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = run(*command, cwd=cwd, env={**tool_env(), **(env or {})}, timeout=600)
    return result.stdout + result.stderr


# A user runs cruft like this: the generator's own shortcuts are off (lock and git init run).
USER_ENV = {"ML_COMPOSE_SKIP_LOCK": "", "ML_COMPOSE_SKIP_GIT": ""}


def test_cruft_update_applies_a_later_template_commit(template_repo: Path, tmp_path: Path) -> None:
    cruft = tool("cruft")
    out = tmp_path / "projects"
    out.mkdir()
    sh(
        cruft, "create", str(template_repo), "--no-input", "--output-dir", str(out),
        "--extra-context", json.dumps(ANSWERS), cwd=tmp_path, env=USER_ENV,
    )  # fmt: skip
    project = out / "cruft-check"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template_repo)
    assert state["context"]["cookiecutter"]["project_name"] == "Cruft Check"
    # The generator committed everything but .cruft.json (cruft writes it afterwards).
    assert sh("git", "status", "--porcelain", cwd=project).strip() == "?? .cruft.json"
    commit_all(project, "Record template answers")
    sh(cruft, "check", cwd=project)
    env_before = (project / ".env").read_text()
    secrets_before = {p.name: p.read_text() for p in (project / "secrets").iterdir()}
    lock = project / "uv.lock"
    lock_before = lock.read_text() if lock.exists() else None

    # The team edits its project...
    makefile = project / "Makefile"
    makefile.write_text(makefile.read_text() + "\nhello:  ## a target of our own\n\t@echo hi\n")
    commit_all(project, "Our own target")

    # ...and the template moves on in a later commit.
    template_project = template_repo / PROJECT_DIR
    readme = template_project / "README.md"
    readme.write_text(readme.read_text() + "\n## Added by template v2\n\nUpgrade marker.\n")
    (template_project / "docs").mkdir(exist_ok=True)
    (template_project / "docs" / "v2-marker.md").write_text(
        "# {{ cookiecutter.project_name }}: new page from template v2\n"
    )
    tmpl_makefile = template_project / "Makefile"
    tmpl_makefile.write_text("# Template v2 note.\n" + tmpl_makefile.read_text())
    commit_all(template_repo, "template v2")

    check = run(cruft, "check", cwd=project, check=False)
    assert check.returncode != 0, "cruft check must report the project as out of date"

    log = sh(cruft, "update", "--skip-apply-ask", cwd=project, env=USER_ENV)
    assert "Failed to apply" not in log and "conflict" not in log.lower(), log
    assert not list(project.rglob("*.rej")), "update left rejected hunks"

    assert "Upgrade marker." in (project / "README.md").read_text()
    assert (project / "docs" / "v2-marker.md").read_text().startswith("# Cruft Check: new page")
    merged = makefile.read_text()
    assert merged.startswith("# Template v2 note.\n"), "template change missing"
    assert "hello:  ## a target of our own" in merged, "user change lost"
    assert "<<<<<<<" not in merged
    assert (project / ".env").read_text() == env_before, ".env secrets were touched"
    secrets_after = {p.name: p.read_text() for p in (project / "secrets").iterdir()}
    assert secrets_after == secrets_before, "secrets/ files were touched"
    assert (lock.read_text() if lock.exists() else None) == lock_before, "uv.lock was touched"
    status = sh("git", "status", "--porcelain", cwd=project)
    assert status.strip(), "update changed nothing"
    assert ".git/" not in status and ".env" not in status.split(), status

    new_state = json.loads((project / ".cruft.json").read_text())
    head = sh("git", "rev-parse", "HEAD", cwd=template_repo).strip()
    assert new_state["commit"] == head
    commit_all(project, "Update from template v2")
    sh(cruft, "check", cwd=project)


def test_cruft_link_adopts_a_plain_cookiecutter_project(
    template_repo: Path, tmp_path: Path
) -> None:
    cruft = tool("cruft")
    out = tmp_path / "plain"
    out.mkdir()
    sh(
        tool("cookiecutter"), str(template_repo), "--no-input", "--output-dir", str(out),
        *(f"{k}={v}" for k, v in ANSWERS.items()), cwd=tmp_path,
    )  # fmt: skip
    project = out / "cruft-check"
    assert not (project / ".cruft.json").exists()
    sh(
        cruft, "link", str(template_repo), "--no-input", "--extra-context", json.dumps(ANSWERS),
        cwd=project,
    )  # fmt: skip
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == sh("git", "rev-parse", "HEAD", cwd=template_repo).strip()
    assert state["context"]["cookiecutter"]["project_name"] == "Cruft Check"
    commit_all(project, "Link to the template")
    sh(cruft, "check", cwd=project)
    # Nothing differs from the template at the linked commit but per-project files.
    diff = sh(cruft, "diff", "--exit-code", cwd=project, env=USER_ENV)
    assert "upstream-template" not in diff, diff
