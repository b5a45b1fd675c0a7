"""docker/prod-secrets.sh (`make prod-secrets`), run for real on a copy of the files it reads."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.secret_policy import weakness

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POLICY = "src/{{ cookiecutter.package_name }}/secret_policy.py"
KEYS = re.findall(
    r"^([A-Z][A-Z0-9_]*)=change-me$",
    (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8"),
    flags=re.MULTILINE,
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("docker/prod-secrets.sh", ".env.example", POLICY):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    return tmp_path


def run(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "docker/prod-secrets.sh"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def secret_file(project: Path, key: str) -> Path:
    return project / "secrets" / key.lower()


def test_writes_a_random_secret_for_every_key_where_none_is_given(project: Path) -> None:
    done = run(project)
    assert done.returncode == 0, done
    values = [secret_file(project, key).read_text(encoding="utf-8") for key in KEYS]
    assert "ADMIN_TOKEN" in KEYS and "POSTGRES_PASSWORD" in KEYS
    assert [weakness(value) for value in values] == [None] * len(KEYS)
    assert len(set(values)) == len(KEYS)


def test_takes_a_strong_value_from_dotenv(project: Path) -> None:
    token = secrets.token_urlsafe(32)
    (project / ".env").write_text(f"ADMIN_TOKEN={token}\n", encoding="utf-8")
    done = run(project)
    assert done.returncode == 0, done
    assert "from .env secrets/admin_token" in done.stdout
    assert secret_file(project, "ADMIN_TOKEN").read_text(encoding="utf-8") == token


@pytest.mark.parametrize(
    ("weak", "reason"), [("change-me", "a placeholder"), ("short-9Zq", "shorter than 24")]
)
def test_refuses_a_weak_secret_file_and_leaves_it(project: Path, weak: str, reason: str) -> None:
    assert run(project).returncode == 0
    path = secret_file(project, "ADMIN_TOKEN")
    path.write_text(weak, encoding="utf-8")
    done = run(project)
    assert done.returncode == 1, done
    assert f"refused secrets/admin_token: {reason}" in done.stderr
    assert weak not in done.stderr + done.stdout
    assert path.read_text(encoding="utf-8") == weak


def test_refuses_a_placeholder_in_dotenv_and_writes_no_file(project: Path) -> None:
    (project / ".env").write_text("POSTGRES_PASSWORD=change-me\n", encoding="utf-8")
    done = run(project)
    assert done.returncode == 1, done
    assert "refused POSTGRES_PASSWORD in .env: a placeholder" in done.stderr
    assert not secret_file(project, "POSTGRES_PASSWORD").exists()
    assert secret_file(project, "ADMIN_TOKEN").exists()  # the other keys are still written


def test_a_second_run_keeps_every_secret(project: Path) -> None:
    assert run(project).returncode == 0
    first = {key: secret_file(project, key).read_text(encoding="utf-8") for key in KEYS}
    done = run(project)
    assert done.returncode == 0, done
    assert {key: secret_file(project, key).read_text(encoding="utf-8") for key in KEYS} == first
    assert done.stdout.count("keep      ") == len(KEYS)
