"""`make bench-pipeline` as written (the test's interpreter instead of `uv run --frozen`), on the
smallest settings that run every step: the data, each DVC stage, training without and with
tracking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import PROJECT_ROOT, write_small_project

BIN = Path(sys.executable).parent
STEPS = ("data", "prepare", "train", "evaluate", "promote", "total")


@pytest.mark.slow
def test_bench_pipeline_times_every_step(tmp_path: Path) -> None:
    params = write_small_project(tmp_path / "small") / "params.yaml"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["make", "bench-pipeline", "RUN=", f"BENCH_ARGS=--params {params}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    timed = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[1:2]]
    assert [step for step in STEPS if step not in timed] == [], done.stdout
    assert any(line.startswith("training, tracking on") for line in lines), done.stdout
