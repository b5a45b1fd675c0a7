"""The generated README's host quickstart, run literally on the default combination.

The commands are extracted from the fenced blocks after `<!-- quickstart:host -->` markers,
in order, and run with bash exactly as written; the block marked `background` (the server)
runs until the end of the test. If the README and the project drift apart, this fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import PROJECT_TEMPLATE
from tests.upkeep.helpers import tool, tool_env

pytestmark = [pytest.mark.slow, pytest.mark.upkeep, pytest.mark.xdist_group("port-8000")]

BLOCK = re.compile(r"<!-- quickstart:host( background)? -->\s*```bash\n(.*?)```", re.DOTALL)
PORT = 8000  # what the README promises


def quickstart_blocks(readme: str) -> list[tuple[bool, str]]:
    return [(bool(background), script) for background, script in BLOCK.findall(readme)]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_readme_blocks_are_found() -> None:
    readme = (PROJECT_TEMPLATE / "README.md").read_text()
    blocks = quickstart_blocks(readme)
    assert [background for background, _ in blocks] == [False, True, False], blocks
    assert "make install" in blocks[0][1] and "make serve" in blocks[1][1]


def test_readme_host_quickstart_runs_as_written(
    bake, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # As a user gets it: uv.lock written and committed at generation.
    monkeypatch.delenv("ML_COMPOSE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", tool_env()["PATH"])
    tool("uv")
    project = bake()
    blocks = quickstart_blocks(project.read("README.md"))
    assert len(blocks) == 3, "README lost its host quickstart markers"
    # Another tier (a Compose stack publishes serving on 8000 too) may hold the port for a
    # while; the README's server needs exactly this one.
    deadline = time.monotonic() + float(os.environ.get("ML_COMPOSE_PORT_WAIT", "1200"))
    while not port_free(PORT) and time.monotonic() < deadline:
        time.sleep(5)
    assert port_free(PORT), f"port {PORT} is taken: the README's server cannot start"

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REQUIRE_SERVICES")}
    env["PATH"] = tool_env()["PATH"]
    server_log = tmp_path / "server.log"
    server: subprocess.Popen[bytes] | None = None
    outputs: list[str] = []
    try:
        for background, script in blocks:
            if background:
                server = subprocess.Popen(
                    ["bash", "-euo", "pipefail", "-c", script],
                    cwd=project.path,
                    env=env,
                    stdout=server_log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                continue
            started = time.monotonic()
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=project.path,
                env=env,
                capture_output=True,
                text=True,
                timeout=2400,
                check=False,
            )
            log = server_log.read_text(errors="replace")[-4000:] if server_log.exists() else ""
            assert result.returncode == 0, (
                f"README block failed after {time.monotonic() - started:.0f}s:\n{script}\n"
                f"--- stdout ---\n{result.stdout[-5000:]}\n--- stderr ---\n"
                f"{result.stderr[-5000:]}\n--- server ---\n{log}"
            )
            outputs.append(result.stdout)
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as the README says
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    # The second terminal's block printed /ready, /predict, /model and the reload outcome.
    printed = outputs[-1]
    decoder, documents, at = json.JSONDecoder(), [], printed.find("{")
    while at != -1:
        document, end = decoder.raw_decode(printed, at)
        documents.append(document)
        at = printed.find("{", end)
    prediction = next(d for d in documents if "request_id" in d)
    assert prediction["model_version"], prediction
    assert any(d.get("alias") == "champion" for d in documents), documents
    assert port_free(PORT), "the server kept running after Ctrl-C"
