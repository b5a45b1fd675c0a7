"""The whole pipeline as users run it, with real DVC and a local remote: `make pipeline` in a
git repository with the embedded defaults (it writes the example data and its committed-ready
`data/raw/*.dvc` pointer), `dvc push`, `dvc pull` in a fresh clone (byte-identical data),
`dvc exp run -S ...`, own data through `dvc add` + `make pipeline`, and the one-line errors
for a missing or corrupt data file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.data import raw

from ..conftest import PROJECT_ROOT, write_small_project

BIN = Path(sys.executable).parent
COPIED = (
    "pyproject.toml",
    "Makefile",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/raw/.gitignore",
    "src",
)
RAW = Path("data/raw/transactions.csv")
POINTER = Path("data/raw/transactions.csv.dvc")


def _make(target: str, root: Path, env: dict[str, str], check: bool = True) -> Any:
    """`make <target>` as written, with the test's interpreter instead of `uv run --frozen`."""
    done = subprocess.run(
        ["make", target, "RUN="], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if check:
        assert done.returncode == 0, f"make {target}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _errors(done: Any) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error: ")]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed (the project's own workflow)")
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
def test_make_pipeline_push_clone_pull_and_exp_run(
    repo: tuple[Path, dict[str, str]], registered_model: Any, tmp_path: Path
) -> None:
    root, env = repo
    dvc = str(BIN / "dvc")
    assert not (root / POINTER).exists()
    _make("pipeline", root, env)
    promotion = json.loads((root / "reports" / "promotion.json").read_text())
    assert promotion["decision"] == "promoted"  # `make pipeline` alone leaves a champion
    assert (root / "mlflow.db").exists()  # the embedded store in the project root
    # The example data is tracked: its pointer records the file and is staged for the commit.
    staged = _run(["git", "diff", "--cached", "--name-only"], root, env).split()
    assert POINTER.as_posix() in staged and RAW.as_posix() not in staged
    assert _run(["git", "check-ignore", RAW.as_posix()], root, env).strip() == RAW.as_posix()
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
    assert (clone / POINTER).exists() and not (clone / RAW).exists()
    _run([dvc, "pull"], clone, env)
    for rel in (RAW.as_posix(), "data/prepared/train.parquet", "data/prepared/test.parquet"):
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel

    before = json.loads((root / "reports" / "train.json").read_text())
    _run([dvc, "exp", "run", "-S", "train.seed=7"], root, env)
    # the experiment's results are in the workspace: retrained (a new version), seed 7 logged
    after = json.loads((root / "reports" / "train.json").read_text())
    assert int(after["version"]) == int(before["version"]) + 1
    assert "seed: 7" in (root / "params.yaml").read_text()


@pytest.mark.slow
def test_replaced_data_is_versioned_with_dvc_add_then_retrained_on(
    repo: tuple[Path, dict[str, str]],
) -> None:
    from {{ cookiecutter.package_name }}.data.generate import generate, write_csv

    root, env = repo
    dvc = str(BIN / "dvc")
    _make("pipeline", root, env)
    _run(["git", "commit", "-qam", "example data"], root, env)
    before = json.loads((root / "reports" / "train.json").read_text())

    # "Own data": another table in place of the example file.
    write_csv(generate(3000, 5), root / RAW)
    refused = _make("pipeline", root, env, check=False)
    assert refused.returncode != 0, "trained on data its pointer does not record"
    (line,) = _errors(refused)
    assert str(RAW) in line and "dvc add" in line and "dvc pull" in line, line

    _run([dvc, "add", RAW.as_posix()], root, env)
    _make("pipeline", root, env)
    after = json.loads((root / "reports" / "train.json").read_text())
    assert int(after["version"]) == int(before["version"]) + 1, "no new model version"
    prepared = sum(
        len(pd.read_parquet(root / "data" / "prepared" / f"{split}.parquet"))
        for split in ("train", "test")
    )
    assert prepared == 3000, "the new model was not trained on the replaced file"
    lock = (root / "dvc.lock").read_text()
    assert raw.file_md5(root / RAW) in lock and raw.recorded_md5(root / RAW) in lock


def test_missing_or_corrupt_data_gives_one_line(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    _make("data", root, env)
    assert (root / POINTER).exists()

    (root / RAW).unlink()
    missing = _make("pipeline", root, env, check=False)
    assert missing.returncode != 0
    (line,) = _errors(missing)
    assert str(RAW) in line and "dvc pull" in line and "make data" in line, line

    (root / RAW).write_bytes(b"\x00\xff garbage \x89PNG\n" * 50)
    refused = _make("pipeline", root, env, check=False)
    assert refused.returncode != 0, "dvc repro would record the corrupt file as a new version"
    (line,) = _errors(refused)
    assert str(RAW) in line and "dvc pull" in line and "make data" in line, line
    corrupt = subprocess.run(
        [sys.executable, "-m", "{{ cookiecutter.package_name }}", "prepare"],
        cwd=root, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert corrupt.returncode == 1
    (line,) = _errors(corrupt)
    assert str(RAW) in line and "dvc pull" in line and "make data" in line, line
    assert "Traceback" not in corrupt.stderr

    _make("data", root, env)  # the fix the line names
    assert raw.problem(root / RAW) is None


def test_own_file_without_pointer_is_not_overwritten(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    (root / RAW).write_text("ours\n")
    refused = _make("pipeline", root, env, check=False)
    assert refused.returncode != 0
    (line,) = _errors(refused)
    assert "not tracked by DVC" in line and f"dvc add {RAW}" in line, line
    assert (root / RAW).read_text() == "ours\n"
