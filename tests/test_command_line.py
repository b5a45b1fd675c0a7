"""The documented entry, `cookiecutter <git URL> [--checkout TAG] name=value ...`, run as a
user runs it: the cookiecutter CLI as a subprocess against a git repository of the template
(a file:// URL goes through the same clone code path as gh:org/ml-compose). Every public
answer is settable there, and a bad name from the command line, a replay file or cruft fails
in the pre-generation hook with one line naming the answer, leaving no directory.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROJECT_DIR, commit_all, option_choices, run
from tests.upkeep.helpers import tool, tool_env

# A value other than the default for every public answer (bools flipped, last choice).
CUSTOM: dict[str, Any] = {
    "project_name": "Card Fraud",
    "project_slug": "card-fraud-scoring",
    "package_name": "card_scoring",
    "description": "Scores card payments.",
    "author_name": "Risk Team",
    "author_email": "risk@example.org",
}
# Bad names typed on the command line: (answers, what the one error line must contain).
BAD_NAMES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "slug-with-spaces": ({"project_slug": "My Project!"}, ("project_slug", "project_slug=")),
    "slug-leading-dash": ({"project_slug": "-fraud"}, ("project_slug", "project_slug=")),
    "package-stdlib": ({"package_name": "os"}, ("package_name", "package_name=my_os")),
    "package-keyword": ({"package_name": "import"}, ("package_name", "another package_name")),
    "package-dependency": ({"package_name": "mlflow"}, ("package_name", "another package_name")),
    "package-empty": ({"package_name": ""}, ("package_name", "package_name=")),
}


def custom_answers() -> dict[str, Any]:
    answers = dict(CUSTOM)
    for key, values in option_choices().items():
        if key not in answers:
            answers[key] = values[-1] if not isinstance(values[0], bool) else not values[0]
    # The last choices (pytorch, CUDA 13.0) are a combination the hook accepts.
    return answers


def cli_value(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def cookiecutter_cli(
    *args: str, cwd: Path, config: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**tool_env(), "ML_COMPOSE_SKIP_LOCK": "1", "ML_COMPOSE_SKIP_GIT": "1"}
    return run(tool("cookiecutter"), "--config-file", config, *args, cwd=cwd, env=env, check=check)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A user config that keeps clones and replay files inside the test's folder."""
    path = tmp_path / "cookiecutter-config.yaml"
    path.write_text(
        f"cookiecutters_dir: {tmp_path / 'clones'}\nreplay_dir: {tmp_path / 'replay'}\n",
        encoding="utf-8",
    )
    return path


def error_line(stderr: str, answer: str) -> str:
    """The hook's one line about `answer` (a bad slug also makes its derived package bad)."""
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR: ")]
    assert errors and all(len(line) < 240 for line in errors), stderr[-3000:]
    (line,) = [line for line in errors if line.startswith(f"ERROR: {answer} ")]
    return line


def test_git_url_with_checkout_of_a_tag_and_every_answer_on_the_command_line(
    template_repo: Path, tmp_path: Path, config: Path
) -> None:
    run("git", "tag", "v1.0.0", cwd=template_repo)
    # A later commit the tag must not see.
    readme = template_repo / PROJECT_DIR / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nAfter v1.0.0.\n", encoding="utf-8")
    commit_all(template_repo, "template after the tag")

    answers = custom_answers()
    out = tmp_path / "out"
    cookiecutter_cli(
        f"file://{template_repo}", "--checkout", "v1.0.0", "--no-input", "--output-dir", str(out),
        *(f"{key}={cli_value(value)}" for key, value in answers.items()),
        cwd=tmp_path, config=config,
    )  # fmt: skip
    clone = tmp_path / "clones" / "template"
    assert (clone / ".git").is_dir(), "cookiecutter did not go through its git clone path"
    assert run("git", "describe", "--tags", cwd=clone).stdout.strip() == "v1.0.0"
    project = out / "card-fraud-scoring"
    assert sorted(p.name for p in out.iterdir()) == ["card-fraud-scoring"]
    assert "After v1.0.0." not in (project / "README.md").read_text(encoding="utf-8")

    # Every public answer reached the context (cookiecutter's replay file records it).
    (replay,) = (tmp_path / "replay").glob("*.json")
    context = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert {key: context[key] for key in answers} == answers
    assert context["_checkout"] == "v1.0.0"

    # ...and the names shape the project.
    assert (project / "src" / "card_scoring" / "__init__.py").exists()
    assert not (project / "src" / "fraud_detector").exists()
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "card-fraud-scoring"' in pyproject
    assert (project / ".python-version").read_text().strip() == answers["python_version"]
    leftovers = [
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file() and "fraud_detector" in path.read_text(errors="ignore")
    ]
    assert leftovers == [], "the default package name survived the package_name answer"


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_name_on_the_command_line_fails_in_the_hook(
    name: str, template_repo: Path, tmp_path: Path, config: Path
) -> None:
    answers, fragments = BAD_NAMES[name]
    out = tmp_path / "out"
    out.mkdir()
    done = cookiecutter_cli(
        str(template_repo), "--no-input", "--output-dir", str(out),
        *(f"{key}={value}" for key, value in answers.items()),
        cwd=tmp_path, config=config, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    line = error_line(done.stderr, next(iter(answers)))
    assert all(fragment in line for fragment in fragments), line
    assert list(out.iterdir()) == [], "a half-written project was left behind"


def test_bad_name_in_a_replay_file_fails_in_the_hook(
    template_repo: Path, tmp_path: Path, config: Path
) -> None:
    first = tmp_path / "first"
    cookiecutter_cli(
        str(template_repo), "--no-input", "--output-dir", str(first), cwd=tmp_path, config=config
    )
    (recorded,) = (tmp_path / "replay").glob("*.json")
    replay = json.loads(recorded.read_text(encoding="utf-8"))
    replay["cookiecutter"]["package_name"] = "json"  # hand-edited: cookiecutter checks nothing
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(replay), encoding="utf-8")

    out = tmp_path / "out"
    out.mkdir()
    done = cookiecutter_cli(
        str(template_repo), "--replay-file", str(edited), "--output-dir", str(out),
        cwd=tmp_path, config=config, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    line = error_line(done.stderr, "package_name")
    assert "package_name 'json'" in line and "standard-library" in line, line
    assert list(out.iterdir()) == []


def test_bad_name_through_cruft_fails_in_the_hook(template_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    done = run(
        tool("cruft"), "create", str(template_repo), "--no-input", "--output-dir", str(out),
        "--extra-context", json.dumps({"project_slug": "Card Fraud"}),
        cwd=tmp_path, env={**tool_env(), "ML_COMPOSE_SKIP_LOCK": "1"}, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    line = error_line(done.stderr, "project_slug")
    assert "project_slug 'Card Fraud'" in line and "project_slug=" in line, line
    assert list(out.iterdir()) == []
