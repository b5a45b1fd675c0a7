"""Fixtures of the container tier: the baked projects with their stand-ins, and their builds.

Session-scoped, shared by test_containers.py (static checks, images, layer cache) and
test_end_to_end.py (one running stack): whichever test needs a build first makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Baked
from tests.containers.stack import (
    ALL,
    COMBOS,
    KIT,
    MLFLOW_PORT,
    NO_STANDIN,
    PROMETHEUS_PORT,
    SERVING_PORT,
    TIMINGS,
    Stack,
    build,
    kit_available,
    provide_torch_wheels,
    sh,
)


@pytest.fixture(scope="session")
def kit() -> Path:
    reason = kit_available()
    if reason:
        pytest.skip(reason)
    return KIT


@pytest.fixture(scope="session")
def stacks(bake_session: Callable[..., Baked], kit: Path) -> dict[str, Stack]:
    """The baked projects, each with its stand-ins provided and its build environment."""
    result: dict[str, Stack] = {}
    for name, answers in ALL.items():
        baked = bake_session(**answers)
        extra: dict[str, str] = {}
        # Published ports away from the defaults another tier (or a user's stack) may hold.
        offset = list(ALL).index(name)
        extra = {
            "SERVING_PORT": str(SERVING_PORT + offset),
            "MLFLOW_PORT": str(MLFLOW_PORT + offset),
            "PROMETHEUS_PORT": str(PROMETHEUS_PORT + offset),
        }
        if name == "default" and not baked.has_file("uv.lock"):
            # The locked path of the Dockerfile (`uv sync --frozen`); the others resolve.
            baked.run("uv", "lock", "--quiet", timeout=600)
        if answers.get("compute") == "cuda":
            # The CUDA stand-in is Debian without Python and the Python download host is
            # unreachable here: use the distribution's python3 (PYTHON_SOURCE=apt).
            extra["PYTHON_SOURCE"] = "apt"
        if answers.get("model_framework") == "pytorch":
            extra["UV_INDEX"] = provide_torch_wheels(baked.path)
        result[name] = Stack(name, baked.path, baked.package, extra)
    done = sh(
        str(kit / "up"), *(f"--scan={s.path}" for s in result.values()), check=False, timeout=1800
    )
    missing = [
        line.split()[0]
        for line in done.stdout.splitlines()
        if "NO STAND-IN" in line and not NO_STANDIN.match(line)
    ]
    assert not missing and (done.returncode == 0 or "NO STAND-IN" in done.stdout), (
        f"up failed for {missing}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="session")
def built(stacks: dict[str, Stack]) -> Callable[[str], Stack]:
    done: set[str] = set()

    def _built(name: str) -> Stack:
        stack = stacks[name]
        if name not in done:
            seconds, _ = build(stack, profiles=("train", "tune"))
            TIMINGS[f"build {name}"] = seconds
            if COMBOS[name].get("compute") == "cuda":
                # training-gpu, and the CPU training image of a CUDA project (COMPUTE=cpu).
                TIMINGS[f"build {name} gpu"], _ = build(stack, "training-gpu", profiles=("gpu",))
                TIMINGS[f"build {name} COMPUTE=cpu"], _ = build(
                    stack, "training", env={"COMPUTE": "cpu"}
                )
            done.add(name)
        return stack

    return _built
