"""This checkout against another checkout of the project (the main of before a change), side by
side in one run: the same registered model, each server one worker, loaded in turns.

    uv run python benchmarks/bench_ab.py ../before   # after `make pipeline` here

The other checkout needs its own environment (`<dir>/.venv`, `uv sync`). Its server and ours
start at once and take turns under load in 1 s slices, in ABBA order (a change in the
machine's background load hits both alike), on `/predict`, `/predict/batch`, `/invocations`
and Open Inference `infer`; then `score` runs on the same Parquet and CSV files, in turns. The
ratios (ours / theirs) are the result; on a shared machine the absolute numbers are not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from bench_scoring import child_environment, write_files
from bench_serving import (
    PACKAGE,
    ROOT,
    Result,
    Server,
    frame_payload,
    free_port,
    load,
    load_average,
    oip_payload,
)

from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.settings import get_settings


def package_of(root: Path) -> str:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return str(project["name"]).replace("-", "_")


def python_of(root: Path) -> str:
    return str(root / ".venv" / "bin" / "python") if root != ROOT else sys.executable


def serve(root: Path, env: dict[str, str]) -> Server:
    port = free_port()
    command = [python_of(root), "-m", package_of(root), "serve", "--port", str(port)]
    return Server(root.name, [*command, "--workers", "1"], port, "/ready", env)


def in_turns(
    a: Server, b: Server, path: str, body: bytes, c: int, seconds: float
) -> tuple[Result, Result]:
    for server in (a, b):
        status, text = server.post(path, body)
        if status != 200:
            raise RuntimeError(f"{server.name} {path}: {status} {text[:300]!r}")
        load(server.port, path, body, c, 1.0)  # warm-up
    parts: dict[int, list[Result]] = {0: [], 1: []}
    for turn in range(2 * max(1, round(seconds / 2))):
        for key in (0, 1) if turn % 2 == 0 else (1, 0):
            server = (a, b)[key]
            parts[key].append(load(server.port, path, body, c, 1.0, warmup=False))
    return Result.merge(parts[0]), Result.merge(parts[1])


def score_rows_per_s(root: Path, source: Path, output: Path, env: dict[str, str]) -> float:
    command = [python_of(root), "-m", package_of(root), "score", "--input", str(source)]
    done = subprocess.run(
        [*command, "--output", str(output), "--no-log"],
        cwd=root,
        env={**child_environment(), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"\(([\d,]+) rows/s\)", done.stdout)
    if not match:
        raise RuntimeError(f"{root.name} score: {done.stdout[-300:]} {done.stderr[-300:]}")
    return float(match.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("against", type=Path, help="the other checkout (with its .venv)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per case and side")
    parser.add_argument("--score-rows", type=int, default=1_000_000, help="0 skips `score`")
    parser.add_argument("--score-turns", type=int, default=2, help="ABBA pairs of `score` runs")
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    theirs_root = args.against.resolve()
    settings = get_settings()
    # both serve the model this checkout's settings name (same store, same version)
    env = {
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MODEL_NAME": settings.model_name,
        "MODEL_ALIAS": settings.model_alias,
        "PREDICTION_LOGGING": "false",
        "REDIS_URL": "",
        "MODEL_POLL_SECONDS": "0",
    }
    record = example_record()
    infer = f"/v2/models/{settings.model_name}/infer"
    cases = [
        ("/predict", "/predict", json.dumps(record).encode(), 16),
        ("/predict/batch 64", "/predict/batch", json.dumps({"records": [record] * 64}).encode(), 4),
        ("/invocations split", "/invocations", frame_payload([record]), 16),
        ("OIP infer", infer, oip_payload([record]), 16),
        ("OIP infer 64", infer, oip_payload([record] * 64), 4),
    ]
    rows: list[dict[str, Any]] = []
    print(f"ours: {ROOT} ({PACKAGE}); theirs: {theirs_root} ({package_of(theirs_root)})")
    print(f"model: models:/{settings.model_name}@{settings.model_alias}; {os.cpu_count()} CPUs")
    ours, theirs = serve(ROOT, env), serve(theirs_root, env)
    try:
        for case, path, body, c in cases:
            a, b = in_turns(theirs, ours, path, body, c, args.duration)
            row = {"case": case, "c": c, "theirs_req_s": a.rps, "ours_req_s": b.rps}
            row["ratio"] = b.rps / a.rps if a.rps else float("nan")
            rows.append(row)
            print(
                f"  {case:<20} c={c:<3} theirs {a.rps:8,.0f}  ours {b.rps:8,.0f} req/s  "
                f"ours/theirs {row['ratio']:.3f}  ({load_average()})"
            )
    finally:
        ours.stop()
        theirs.stop()
    if args.score_rows:
        with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
            folder = Path(tmp)
            csv_file, parquet_file, _tenth, _records = write_files(folder, args.score_rows)
            for source in (parquet_file, csv_file):
                out = folder / "out.parquet"
                score_rows_per_s(ROOT, source, out, env)  # warm-up: bytecode, page cache
                score_rows_per_s(theirs_root, source, out, env)
                got: dict[str, list[float]] = {"theirs": [], "ours": []}
                for turn in range(2 * args.score_turns):
                    for key in ("theirs", "ours") if turn % 2 == 0 else ("ours", "theirs"):
                        root = ROOT if key == "ours" else theirs_root
                        got[key].append(score_rows_per_s(root, source, out, env))
                a, b = (sum(got[k]) / len(got[k]) for k in ("theirs", "ours"))
                case = f"score {source.suffix[1:]} {args.score_rows:,} rows"
                rows.append({"case": case, "theirs_rows_s": a, "ours_rows_s": b, "ratio": b / a})
                print(
                    f"  {case:<20}       theirs {a:8,.0f}  ours {b:8,.0f} rows/s "
                    f"ours/theirs {b / a:.3f}  ({load_average()})"
                )
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "when": time.time()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
