"""`make demo`: the whole host path of a generated project, end to end.

Bakes the default project into .baked/demo, installs it with uv, runs the pipeline
(`make pipeline`: example data tracked by DVC, prepare -> train -> evaluate -> champion), starts
the model server, sends one prediction and prints the answer. Embedded defaults only: SQLite,
local files, no Redis, no Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("ML_COMPOSE_DEMO_DIR", TEMPLATE / ".baked" / "demo"))
EXAMPLE = {
    "amount": 912.5,
    "hour": 3,
    "day_of_week": 5,
    "merchant_category": "electronics",
    "channel": "online",
    "device_type": "mobile",
    "customer_age": 24,
    "card_age_days": 12,
    "distance_from_home_km": 840.0,
    "txn_count_24h": 9,
    "avg_amount_30d": 61.0,
    "amount_to_avg_ratio": 14.96,
    "foreign_transaction": 1,
    "failed_pin_attempts_24h": 2,
}


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, env=env, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def main() -> int:
    # The host's interpreter: a fresh machine may not have the project's .python-version, and
    # the project installs on any Python >= 3.11.
    env = {**os.environ, "UV_PYTHON": os.environ.get("UV_PYTHON", sys.executable)}
    env.pop("VIRTUAL_ENV", None)
    step("bake the default project")
    # only the project this script bakes: OUT may be a folder the user already uses
    shutil.rmtree(OUT / "fraud-detector", ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(OUT)))
    step("install (uv sync)")
    run(["make", "install"], project, env)
    step("pipeline (make data + dvc repro)")
    run(["make", "pipeline"], project, env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    step(f"serve on {url}")
    server = subprocess.Popen(
        ["make", "serve", f"SERVE_ARGS=--host 127.0.0.1 --port {port}"],
        cwd=project,
        env=env,
        start_new_session=True,
    )
    try:
        wait_ready(url, server)
        step("POST /predict")
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps(EXAMPLE).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        print(json.dumps(EXAMPLE, indent=2))
        print("->", json.dumps(answer, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as a user would stop `make serve`
        server.wait(timeout=30)
    print(f"\nThe project is in {project}; its README.md says what to do next.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
