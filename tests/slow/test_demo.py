"""`make demo` is the README's first command: it must work end to end on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE

pytestmark = pytest.mark.slow


def test_demo_bakes_trains_serves_and_predicts(tmp_path: Path) -> None:
    env = {**os.environ, "ML_COMPOSE_DEMO_DIR": str(tmp_path / "demo")}
    env.pop("ML_COMPOSE_SKIP_LOCK", None)  # the demo is a real first run, lock included
    result = subprocess.run(
        [sys.executable, str(TEMPLATE / "scripts" / "demo.py")],
        cwd=TEMPLATE,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    answer = json.loads(result.stdout.rsplit("\n-> ", 1)[1].split("\n\nThe project is in")[0])
    assert answer["label"] in {"legit", "fraud"}
    assert answer["model_version"] == "1"
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4
    assert (tmp_path / "demo" / "fraud-detector" / "uv.lock").exists()
