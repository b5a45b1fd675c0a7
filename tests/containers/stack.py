"""Docker / Compose helpers of the container tier (tests/containers).

Every command goes through /usr/bin/docker (Debian's 20.10 client, BuildKit built in) with the
environment the shared container kit expects; nothing here pulls from a registry: the images a
project names get local stand-ins from `$ML_COMPOSE_CONTAINERS/up` first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KIT = Path(os.environ.get("ML_COMPOSE_CONTAINERS", REPO.parent / "shared" / "containers"))
DOCKER = "/usr/bin/docker"
TORCH_WHEELS = Path(os.environ.get("ML_COMPOSE_TORCH_WHEELS", "/opt/wheels"))


def docker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"/usr/bin:{env.get('PATH', '')}"
    env.update({"COMPOSE_BAKE": "false", "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"})
    env.update(extra or {})
    return env


def sh(
    *cmd: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 1200,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, cwd=cwd, env=env or docker_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {done.returncode}\n--- stdout ---\n{done.stdout[-5000:]}"
            f"\n--- stderr ---\n{done.stderr[-5000:]}"
        )
    return done


def kit_available() -> str | None:
    """None when the container kit can run here, else the reason it cannot."""
    if not (KIT / "up").is_file():
        return f"container kit not found at {KIT} (set ML_COMPOSE_CONTAINERS)"
    if os.geteuid() != 0:
        return "the container kit needs root (apt, dockerd)"
    return None


@dataclass
class Stack:
    """One baked project and the Compose settings that keep it apart from the others."""

    name: str
    path: Path
    package: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return docker_env(
            {"COMPOSE_PROJECT_NAME": f"mlc-{self.name}", "IMAGE_TAG": f"mlc-{self.name}"}
            | self.extra_env
        )

    def compose(
        self, *args: str, timeout: int = 1200, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return sh(
            DOCKER, "compose", *args, cwd=self.path, env=self.env, timeout=timeout, check=check
        )

    def run_make(self, target: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
        """A target of the project's Makefile, in this stack's environment."""
        return sh(
            "make",
            "--no-print-directory",
            target,
            cwd=self.path,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    @property
    def container_filter(self) -> tuple[str, ...]:
        """`docker ps` filters for this project's containers. Compose labels the images it
        builds with the project too, so containers that something else starts from those images
        (`docker run`, another tier) carry it; only Compose's own containers have a config hash."""
        return (
            "--filter",
            f"label=com.docker.compose.project=mlc-{self.name}",
            "--filter",
            "label=com.docker.compose.config-hash",
        )

    def image(self, kind: str) -> str:
        """Image name of a target: serve, mlflow, train-cpu, train-cuda."""
        slug = self.path.name
        return f"{slug}-{kind}:mlc-{self.name}"

    def logs(self) -> str:
        """Diagnostics for a failed step: container states (OOM kills, restarts) and logs."""
        ids = sh(DOCKER, "ps", "-aq", *self.container_filter).stdout.split()
        states = (
            sh(
                DOCKER,
                "inspect",
                "-f",
                "{{.Name}} {{.State.Status}} oom={{.State.OOMKilled}} "
                "exit={{.State.ExitCode}} restarts={{.RestartCount}}",
                *ids,
                check=False,
            ).stdout
            if ids
            else ""
        )
        logs = self.compose("--profile", "*", "logs", "--tail", "40", check=False).stdout
        return f"{states}\n{logs[-8000:]}"

    def down(self) -> None:
        self.compose(
            "--profile",
            "*",
            "down",
            "-v",
            "--remove-orphans",
            "--timeout",
            "5",
            check=False,
            timeout=300,
        )

    def mounted_volumes(self) -> set[str]:
        """Volumes (named and anonymous) mounted by this project's containers right now."""
        ids = sh(DOCKER, "ps", "-aq", *self.container_filter).stdout.split()
        if not ids:
            return set()
        out = sh(
            DOCKER,
            "inspect",
            "-f",
            '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}',
            *ids,
        ).stdout
        return set(out.split())

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks still labelled with this Compose project."""
        label = f"label=com.docker.compose.project=mlc-{self.name}"
        found = {}
        for kind, cmd in {
            "containers": ("container", "ls", "-aq", *self.container_filter),
            "volumes": ("volume", "ls", "-q", "--filter", label),
            "networks": ("network", "ls", "-q", "--filter", label),
        }.items():
            out = sh(DOCKER, *cmd).stdout.split()
            found[kind] = out
        return found


def image_info(ref: str) -> dict[str, Any]:
    return json.loads(sh(DOCKER, "image", "inspect", ref).stdout)[0]


def run_in_image(ref: str, *cmd: str, user: str | None = None) -> str:
    args = [DOCKER, "run", "--rm", "--entrypoint", cmd[0]]
    if user:
        args += ["--user", user]
    return sh(*args, ref, *cmd[1:], timeout=300).stdout


def http(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read().decode(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def provide_torch_wheels(project: Path) -> str:
    """Offline PyTorch for builds here: a PEP 503 index of the local CPU wheel in docker/wheels.

    Only PyPI is reachable from builds on CI, and PyPI's torch is the multi-GB CUDA build; the
    project's own `pytorch-cpu` index (download.pytorch.org) is overridden by name. Returns the
    UV_INDEX build arg.
    """
    wheels = sorted(TORCH_WHEELS.glob("torch-*+cpu-*.whl"))
    if not wheels:
        raise AssertionError(f"no CPU torch wheel in {TORCH_WHEELS} (ML_COMPOSE_TORCH_WHEELS)")
    simple = project / "docker" / "wheels" / "simple"
    (simple / "torch").mkdir(parents=True, exist_ok=True)
    links = []
    for wheel in wheels:
        shutil.copyfile(wheel, simple / "torch" / wheel.name)
        href = wheel.name.replace("+", "%2B")
        links.append(f'<a href="{href}">{wheel.name}</a>')
    (simple / "torch" / "index.html").write_text("\n".join(links) + "\n", encoding="utf-8")
    (simple / "index.html").write_text('<a href="torch/">torch</a>\n', encoding="utf-8")
    return "pytorch-cpu=file:///wheels/simple"


STEP = re.compile(r"^#(\d+) \[(?P<label>[^\]]+)\] (?P<what>.*)$")
STATUS = re.compile(r"^#(\d+) (CACHED|DONE\b)")


def build_steps(log: str) -> dict[tuple[str, str], str]:
    """BuildKit `plain` progress -> {(stage, instruction): "CACHED" | "DONE"}.

    Compose prefixes stage labels with the service (`[serving deps-serve 3/3]`); the stage is
    the word before the `k/n` counter.
    """
    steps: dict[str, tuple[str, str]] = {}
    states: dict[tuple[str, str], str] = {}
    for line in log.splitlines():
        if match := STEP.match(line):
            words = match.group("label").split()
            if len(words) >= 2 and re.fullmatch(r"\d+/\d+", words[-1]):
                steps[match.group(1)] = (words[-2], match.group("what").strip())
        elif (match := STATUS.match(line)) and match.group(1) in steps:
            key = steps[match.group(1)]
            # A step shared by several services is CACHED for all once one built it.
            if states.get(key) != "DONE":
                states[key] = "CACHED" if match.group(2) == "CACHED" else "DONE"
    return states


# --- the combinations of the tier and their builds -------------------------------------------
# name -> answers. sklearn: default; xgboost: the CUDA combination (with monitoring, so its
# files are checked too); pytorch: CPU on Python 3.11 (the CPU wheel available offline here).
COMBOS: dict[str, dict[str, Any]] = {
    "default": {},
    "xgboost-cuda": {
        "model_framework": "xgboost",
        "compute": "cuda",
        "cuda_version": "12.6",
        "monitoring": "prometheus-grafana",
    },
    "pytorch-cpu": {"model_framework": "pytorch", "python_version": "3.11"},
}
# Checked statically only: the optional services switched off.
STATIC_ONLY: dict[str, dict[str, Any]] = {
    "minimal": {
        "python_version": "3.11",
        "use_redis_cache": False,
        "use_prediction_logging": False,
        "dvc_remote": "s3",
    },
}
ALL = COMBOS | STATIC_ONLY
# Published ports of the end-to-end stack: away from the defaults another tier may hold.
SERVING_PORT, MLFLOW_PORT, NGINX_PORT, PROMETHEUS_PORT = 18000, 15000, 18080, 19090
# Images without a stand-in (grafana: no Debian/PyPI/npm package): checked statically only.
NO_STANDIN = re.compile(r"^grafana/grafana")
SERVE_FORBIDDEN = ("dvc", "optuna", "pandas", "sklearn", "matplotlib", "torch", "xgboost")
TIMINGS: dict[str, float] = {}


def report(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    with capsys.disabled():
        print()
        for line in lines:
            print(f"[containers] {line}")


def build(
    stack: Stack,
    *services: str,
    profiles: tuple[str, ...] = ("train",),
    env: dict[str, str] | None = None,
) -> tuple[float, str]:
    args = [a for p in profiles for a in ("--profile", p)]
    start = time.monotonic()
    done = sh(
        DOCKER,
        "compose",
        *args,
        "build",
        *services,
        cwd=stack.path,
        env=stack.env | (env or {}),
        timeout=2400,
    )
    return time.monotonic() - start, done.stdout + done.stderr
