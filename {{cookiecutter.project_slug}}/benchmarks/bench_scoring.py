"""Benchmark batch scoring (`{{ cookiecutter.package_name }} score`) against calling the server's
`/predict/batch` in 1,000-row requests, on the same registered model, in one run.

    uv run python benchmarks/bench_scoring.py --rows 1000000

Writes a synthetic file of `--rows` rows (CSV and Parquet), scores each with the command in a
child process (its peak RSS is read from the kernel), and sends the same rows to one server
worker as 1,000-row `/predict/batch` requests from 4 keep-alive connections. Memory flatness:
the CSV is also scored at a quarter of the rows; the peak RSS of both runs is printed (the
chunked reader keeps it independent of the file size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_serving import ROOT, load, ours

from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES, TARGET
from {{ cookiecutter.package_name }}.settings import get_settings

PACKAGE = "{{ cookiecutter.package_name }}"


def score(source: Path, output: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `score` run in a child process."""
    started = time.perf_counter()
    command = [sys.executable, "-m", PACKAGE, "score", "--input", str(source)]
    command += ["--output", str(output), "--no-log"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"score exited with {process.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of /predict/batch")
    args = parser.parse_args()
    settings = get_settings()
    print(f"model: models:/{settings.model_name}@{settings.model_alias}; {args.rows:,} rows")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = generate(args.rows, seed=7).drop(columns=[TARGET])
        frame.insert(0, "txn_id", range(len(frame)))
        quarter = folder / "quarter.csv"
        frame.head(args.rows // 4).to_csv(quarter, index=False)
        csv_file, parquet_file = folder / "input.csv", folder / "input.parquet"
        frame.to_csv(csv_file, index=False)
        frame.to_parquet(parquet_file, index=False)
        records = frame[list(FEATURE_NAMES)].head(1000).to_dict(orient="records")
        del frame

        results: dict[str, float] = {}
        small_s, small_mb = score(quarter, folder / "quarter.parquet")
        print(
            f"  score csv {args.rows // 4:>11,} rows  {small_s:6.1f} s  peak RSS {small_mb:6.0f} MB"
        )
        for name, source in (("csv", csv_file), ("parquet", parquet_file)):
            seconds, peak_mb = score(source, folder / f"out-{name}.parquet")
            results[f"score {name}"] = args.rows / seconds
            print(
                f"  score {name:<7} {args.rows:>9,} rows  {seconds:6.1f} s  "
                f"{args.rows / seconds:>10,.0f} rows/s  peak RSS {peak_mb:6.0f} MB"
            )
            if name == "csv":  # the process start and model load cancel out
                extra = args.rows - args.rows // 4
                steady = extra / max(seconds - small_s, 1e-9)
                results["score csv, steady"] = steady
                print(f"  score csv, steady state (after start-up)  {steady:>10,.0f} rows/s")
        body = json.dumps({"records": records}).encode()
        server = ours({"PREDICTION_LOGGING": "false", "REDIS_URL": ""})
        try:
            status, text = server.post("/predict/batch", body)
            if status != 200:
                raise RuntimeError(f"/predict/batch: {status} {text[:300]!r}")
            result = load(server.port, "/predict/batch", body, 4, args.duration)
        finally:
            server.stop()
        results["/predict/batch"] = result.rps * 1000
        print(f"  /predict/batch 1,000-row requests, c=4   {result.rps * 1000:>10,.0f} rows/s")
    for name in ("score csv", "score parquet", "score csv, steady"):
        ratio = results[name] / results["/predict/batch"]
        print(f"  {name} / /predict/batch rows/s: {ratio:.1f}x [>= 10x]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
