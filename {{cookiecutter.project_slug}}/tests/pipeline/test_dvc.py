"""The whole pipeline as users run it: `dvc repro` in a git repository with the embedded
defaults, then `dvc status`, `dvc push` to a local remote, `dvc pull` in a fresh clone and
`dvc exp run -S ...`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import PROJECT_ROOT, write_small_project

BIN = Path(sys.executable).parent
COPIED = ("pyproject.toml", ".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore", "src")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "project"
    root.mkdir()
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    write_small_project(root)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "MODEL_NAME", "PROJECT_ROOT", "DEVICE"}
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    _run(["git", "init", "-q", "-b", "main"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "init"], root, env)
    _run(
        [
            str(BIN / "dvc"),
            "remote",
            "modify",
            "--local",
            "storage",
            "url",
            str(tmp_path / "remote"),
        ],
        root,
        env,
    )
    return root, env


@pytest.mark.slow
def test_dvc_repro_push_clone_pull_and_exp_run(
    repo: tuple[Path, dict[str, str]], registered_model: Any, tmp_path: Path
) -> None:
    root, env = repo
    dvc = str(BIN / "dvc")
    _run([dvc, "repro"], root, env)
    promotion = json.loads((root / "reports" / "promotion.json").read_text())
    assert promotion["decision"] == "promoted"  # `dvc repro` alone leaves a champion
    assert (root / "mlflow.db").exists()  # the embedded store in the project root
    # Reproducible: same commit and parameters as the session's model -> identical metrics.
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert metrics == json.loads((registered_model.root / "reports" / "metrics.json").read_text())

    assert "up to date" in _run([dvc, "status"], root, env)
    _run([dvc, "push"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "pipeline run"], root, env)
    assert _run(["git", "status", "--porcelain"], root, env).strip() == ""

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    _run(
        [dvc, "remote", "modify", "--local", "storage", "url", str(tmp_path / "remote")], clone, env
    )
    assert not (clone / "data" / "raw" / "transactions.csv").exists()
    _run([dvc, "pull"], clone, env)
    for rel in (
        "data/raw/transactions.csv",
        "data/prepared/train.parquet",
        "data/prepared/test.parquet",
    ):
        assert _md5(clone / rel) == _md5(root / rel), rel

    before = json.loads((root / "reports" / "train.json").read_text())
    _run([dvc, "exp", "run", "-S", "train.seed=7"], root, env)
    # the experiment's results are in the workspace: retrained (a new version), seed 7 logged
    after = json.loads((root / "reports" / "train.json").read_text())
    assert int(after["version"]) == int(before["version"]) + 1
    assert "seed: 7" in (root / "params.yaml").read_text()
