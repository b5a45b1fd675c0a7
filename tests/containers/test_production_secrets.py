"""Container tier: the serve image started as compose.prod.yaml starts it (PRODUCTION=true,
secrets as files under /run/secrets/ read through the entrypoint) refuses a weak secret
before it listens: exit status 2 and one line naming the variable and `make prod-secrets`,
never the value."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.containers.stack import DOCKER, Stack, build, sh

pytestmark = [pytest.mark.containers, pytest.mark.xdist_group("containers")]


def test_serve_image_refuses_a_weak_secret_file_in_production(
    stacks: dict[str, Stack], tmp_path: Path
) -> None:
    stack = stacks["default"]
    build(stack, "serving")
    folder = tmp_path / "secrets"
    folder.mkdir()
    values = {
        "admin_token": secrets.token_urlsafe(32),
        "mlflow_serving_password": secrets.token_urlsafe(32),
        "serving_db_password": "change-me",
    }
    for name, value in values.items():
        (folder / name).write_text(value, encoding="utf-8")
        (folder / name).chmod(0o644)  # the image's user (10001) is not this one
    folder.chmod(0o755)
    done = sh(
        DOCKER, "run", "--rm", "--read-only", "--cap-drop", "ALL",
        "-v", f"{folder}:/run/secrets:ro",
        "-e", "PRODUCTION=true",
        "-e", "ADMIN_TOKEN_FILE=/run/secrets/admin_token",
        "-e", "MLFLOW_TRACKING_USERNAME=serving",
        "-e", "MLFLOW_TRACKING_PASSWORD_FILE=/run/secrets/mlflow_serving_password",
        "-e", "POSTGRES_PASSWORD_FILE=/run/secrets/serving_db_password",
        "-e", "DATABASE_URL=postgresql+psycopg://serving@db:5432/x",
        stack.image("serve"),
        check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        "PGPASSWORD: a placeholder; PRODUCTION=true needs a random secret of at least 24 "
        "characters (make prod-secrets writes them to secrets/)"
    ], done.stderr
    assert "change-me" not in done.stdout + done.stderr
