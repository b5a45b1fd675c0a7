"""Real HTTP servers for the protocol tests: ours (`{{ cookiecutter.package_name }} serve`) and MLflow's own
`mlflow models serve`, both on the session's registered model, each in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .private_services import free_port

PACKAGE = "{{ cookiecutter.package_name }}"


def _wait(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


@contextmanager
def _process(
    command: list[str], env: dict[str, str], cwd: Path, ready_url: str, log: Path | None = None
) -> Iterator[None]:
    output = log.open("wb") if log else None
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=output or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        start_new_session=True,  # its workers stop with it
    )
    try:
        _wait(process, ready_url, timeout=120)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if output:
            output.close()


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MLFLOW_TRACKING_URI")}
    env.update({name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    env.update(values)
    return env


@contextmanager
def our_server(
    model: Any, workdir: Path, log: Path | None = None, **settings: str
) -> Iterator[str]:
    """`{{ cookiecutter.package_name }} serve` on `model` (a RegisteredModel); yields its base URL. Its
    output (warnings and errors) goes to `log` when given."""
    port = free_port()
    env = _clean_env(
        PROJECT_ROOT=str(workdir),
        MLFLOW_TRACKING_URI=model.tracking_uri,
        MODEL_NAME=model.name,
        DATABASE_URL=f"sqlite:///{workdir / 'predictions.db'}",
        PREDICTION_LOGGING="false",
        **settings,
    )
    command = [sys.executable, "-m", PACKAGE, "serve", "--port", str(port), "--workers", "1"]
    command += ["--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    with _process(command, env, workdir, f"{url}/ready", log):
        yield url


@contextmanager
def mlflow_models_serve(model: Any, workdir: Path) -> Iterator[str]:
    """MLflow's own scoring server on the same registered version; yields its base URL."""
    port = free_port()
    env = _clean_env(MLFLOW_TRACKING_URI=model.tracking_uri)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m"]
    command += [f"models:/{model.name}/{model.version}", "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    url = f"http://127.0.0.1:{port}"
    with _process(command, env, workdir, f"{url}/ping"):
        yield url
