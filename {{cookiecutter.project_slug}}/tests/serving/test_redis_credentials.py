"""The Redis password reaches the cache's client in-process, never through a URL: serving reads
REDIS_PASSWORD_FILE itself (settings), REDIS_URL carries no password, and the image's entrypoint
no longer writes one into it. A private redis-server that requires the password."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.serving.cache import PredictionCache
from {{ cookiecutter.package_name }}.serving.metrics import Metrics
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import PROJECT_ROOT
from .private_services import free_port, missing_binary, wait_for_port

PASSWORD = "Vb7qL2xT9mN4kR8wZ3cH6pJ1"


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server") or missing_binary("redis-server", "redis-server")
    port = free_port()
    # The password on stdin (a config file), not in argv.
    process = subprocess.Popen(
        [binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert process.stdin is not None
    config = f'port {port}\nbind 127.0.0.1\nsave ""\ndir {tmp_path}\nrequirepass {PASSWORD}\n'
    process.stdin.write(config.encode())
    process.stdin.close()
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=10)


def _check(url: str, tmp_path: Path) -> str:
    settings = Settings(_env_file=None, project_root=tmp_path, redis_url=url)

    async def ping() -> str:
        cache = PredictionCache(url, settings, Metrics())
        try:
            return await cache.check()
        finally:
            await cache.close()

    return asyncio.run(ping())


def test_the_cache_authenticates_with_the_password_file(
    protected_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD_FILE", raising=False)
    assert _check(protected_redis, tmp_path).startswith("down:"), "the server requires it"
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(secret))
    assert _check(protected_redis, tmp_path) == "ok"
    assert PASSWORD not in protected_redis
    assert not [name for name, value in os.environ.items() if PASSWORD in value]


def test_the_entrypoint_puts_no_password_into_redis_url(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_URL": "redis://redis:6379/0",
        "REDIS_PASSWORD": PASSWORD,
    }
    done = subprocess.run(
        ["sh", str(PROJECT_ROOT / "docker" / "entrypoint.sh"), "env"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["REDIS_URL"] == "redis://redis:6379/0"
