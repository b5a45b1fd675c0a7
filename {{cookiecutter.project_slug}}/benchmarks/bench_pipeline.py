"""Wall time of the DVC pipeline by stage, and the cost of MLflow tracking.

Runs in a temporary copy of the project (its own git repository, SQLite tracking store and
DVC cache), so your registry and data are left alone:

    make bench-pipeline                 # default dataset (params.yaml)
    python benchmarks/bench_pipeline.py --rows 20000
    python benchmarks/bench_pipeline.py --params small.yaml   # another params.yaml

1. `make data` (the example data, `dvc add`ed), then `dvc repro -s <stage>` for each stage in
   order (their sum is the end-to-end `make pipeline`);
2. the same training with tracking off (fit + ONNX export) and on (+ logging, model upload,
   registration), in one process.
Goals: the whole pipeline under 60 s on 2 cores; tracking overhead under 10 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
COPIED = (
    "pyproject.toml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "src",
    "dvc.yaml",
    "params.yaml",
)
STAGES = ("prepare", "train", "evaluate", "promote")
GOAL_SECONDS, GOAL_OVERHEAD = 60.0, 0.10


def copy_project(target: Path) -> None:
    for name in COPIED:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, help="rows of the synthetic dataset (default: params.yaml)"
    )
    parser.add_argument(
        "--params", type=Path, help="the params.yaml to run with (default: the project's)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-pipeline-")) / "project"
    root.mkdir()
    copy_project(root)
    if args.params:
        shutil.copy(args.params, root / "params.yaml")
    bin_dir = Path(sys.executable).parent
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "MODEL_NAME", "PROJECT_ROOT"}
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@localhost",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@localhost",
    )
    if args.rows:
        sys.path.insert(0, str(PROJECT / "src"))
        from ruamel.yaml import YAML

        yaml = YAML()
        params = yaml.load((root / "params.yaml").read_text())
        params["generate"]["rows"] = args.rows
        with (root / "params.yaml").open("w") as handle:
            yaml.dump(params, handle)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        run(cmd, root, env)

    print(f"pipeline in {root} ({os.cpu_count()} CPUs)")
    seconds = {}
    # the data is no stage: `make data` writes it and its DVC pointer, which `prepare` reads
    data = [sys.executable, "-m", "{{ cookiecutter.package_name }}", "generate", "--track"]
    seconds["data"] = run(data, root, env)
    print(f"  {'data':<10} {seconds['data']:6.1f} s", flush=True)
    for stage in STAGES:
        seconds[stage] = run([str(bin_dir / "dvc"), "repro", "-s", stage], root, env)
        print(f"  {stage:<10} {seconds[stage]:6.1f} s", flush=True)
    total = sum(seconds.values())
    verdict = "ok" if total < GOAL_SECONDS else "over the goal"
    print(f"  {'total':<10} {total:6.1f} s  (goal < {GOAL_SECONDS:.0f} s: {verdict})")

    # Tracking overhead, in-process: identical training with tracking off, then on.
    os.chdir(root)
    os.environ["PROJECT_ROOT"] = str(root)
    from {{ cookiecutter.package_name }}.pipeline.common import Context, setup_logging
    from {{ cookiecutter.package_name }}.pipeline.train import train

    setup_logging()
    ctx = Context.load(root / "params.yaml")
    off = time.perf_counter()
    train(ctx, tracking=False)
    off = time.perf_counter() - off
    on = time.perf_counter()
    train(ctx, tracking=True)
    on = time.perf_counter() - on
    overhead = (on - off) / off
    verdict = "ok" if overhead < GOAL_OVERHEAD else "over the goal"
    print(f"training, tracking off {off:6.1f} s")
    print(f"training, tracking on  {on:6.1f} s  overhead {overhead:+.0%}", end=" ")
    print(f"(goal < {GOAL_OVERHEAD:.0%}: {verdict})")
    if not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
