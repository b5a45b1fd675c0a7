"""Benchmark batch scoring (`{{ cookiecutter.package_name }} score`) against calling the server's
`/predict/batch` in 1,000-row requests, on the same registered model, in one run.

    uv run python benchmarks/bench_scoring.py --rows 10000000 --workdir /dev/shm

(`make bench` runs it too, `--score-rows`.) Writes a synthetic file of `--rows` rows as CSV and
Parquet, chunk by chunk (the benchmark never holds the table), and a tenth of it as a second
CSV. Each is scored by the command in a child process (after one unmeasured run that leaves
Python's bytecode cache as any second run finds it); its RSS is sampled through the run: the
same peak in the second half of the file as in the first means memory does not grow with the
file (the tenth's peak, before the pipeline has filled, is printed next to it). The same
rows go to one server worker (one onnxruntime thread, as Compose runs it) as 1,000-row
`/predict/batch` requests from 4 keep-alive connections, before and after the scoring runs,
so a change in the machine's background load shows up (and hits both sides). The files need
about 90 bytes a row (`--workdir`, default the system's temporary folder).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_serving import ROOT, load, ours

from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES, TARGET
from {{ cookiecutter.package_name }}.settings import get_settings

PACKAGE = "{{ cookiecutter.package_name }}"
CHUNK_ROWS = 500_000
BATCH = "1,000-row requests, c=4"


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


@dataclass
class Run:
    what: str
    rows: int
    seconds: float
    peak_rss_mb: float
    load: str
    # peak RSS in the first and the second half of the run (sampled; 0 where /proc is missing)
    first_half_rss_mb: float = 0.0
    second_half_rss_mb: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def write_files(folder: Path, rows: int) -> tuple[Path, Path, Path, list[dict[str, Any]]]:
    """(full CSV, full Parquet, the first tenth as CSV, 1,000 records for /predict/batch)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv_file, parquet_file = folder / "input.csv", folder / "input.parquet"
    tenth_file = folder / "tenth.csv"
    tenth = max(rows // 10, 1)
    writers: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    done = 0
    while done < rows:
        n = min(CHUNK_ROWS, rows - done)
        frame = generate(max(n, 10), seed=7 + done).head(n).drop(columns=[TARGET])
        frame.insert(0, "txn_id", range(done, done + n))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if not writers:
            records = frame[list(FEATURE_NAMES)].head(1000).to_dict(orient="records")
            writers["csv"] = pacsv.CSVWriter(csv_file, table.schema)
            writers["parquet"] = pq.ParquetWriter(parquet_file, table.schema)
            writers["tenth"] = pacsv.CSVWriter(tenth_file, table.schema)
        writers["csv"].write_table(table)
        writers["parquet"].write_table(table)
        if done < tenth:
            writers["tenth"].write_table(table.slice(0, tenth - done))
        done += n
    for writer in writers.values():
        writer.close()
    return csv_file, parquet_file, tenth_file, records


def child_environment() -> dict[str, str]:
    """The environment of the `score` runs: Python caches compiled modules, as a usual shell
    and the images (compiled at build) do. With PYTHONDONTWRITEBYTECODE set, every run would
    compile mlflow and its dependencies again (seconds of start-up no user pays twice)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def score(what: str, source: Path, rows: int, output: Path) -> Run:
    """One `score` run in a child process: wall time (start-up and model load included) and its
    RSS sampled through the run (Linux; else the kernel's peak): flat memory means the second
    half of the file needs no more than the first."""
    started = time.perf_counter()
    command = [sys.executable, "-m", PACKAGE, "score", "--input", str(source)]
    command += ["--output", str(output), "--no-log"]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, env=child_environment()
    )
    samples: list[tuple[float, float]] = []

    def sample() -> None:
        while process.returncode is None:
            samples.append((time.perf_counter() - started, _rss_mb(process.pid)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"score {source} exited with {process.returncode}")
    output.unlink(missing_ok=True)  # the disk holds one output at a time
    halves = (
        max((rss for t, rss in samples if t < seconds / 2), default=0.0),
        max((rss for t, rss in samples if t >= seconds / 2), default=0.0),
    )
    # the kernel's peak of a forked child can include the parent's size at the fork: the
    # samples, where there are some, are the child's own
    peak = max(halves) or usage.ru_maxrss / 1024
    run = Run(what, rows, seconds, peak, load_average(), *halves)
    print(
        f"  {what:<26} {rows:>11,} rows {seconds:7.1f} s {run.rows_per_second:>10,.0f} rows/s  "
        f"peak RSS {run.peak_rss_mb:5.0f} MB (halves {halves[0]:4.0f}, {halves[1]:4.0f})  "
        f"({run.load})"
    )
    return run


def predict_batch(records: list[dict[str, Any]], seconds: float) -> tuple[float, str]:
    """rows/s of 1,000-row /predict/batch requests on one server worker, c=4."""
    body = json.dumps({"records": records}).encode()
    server = ours({"PREDICTION_LOGGING": "false", "REDIS_URL": "", "MODEL_POLL_SECONDS": "0"})
    try:
        status, text = server.post("/predict/batch", body)
        if status != 200:
            raise RuntimeError(f"/predict/batch: {status} {text[:300]!r}")
        result = load(server.port, "/predict/batch", body, 4, seconds)
    finally:
        server.stop()
    if result.errors:
        raise RuntimeError(f"/predict/batch: {result.errors} failed requests")
    return result.rps * len(records), load_average()


def model_ceiling(parquet_file: Path, seconds: float) -> float:
    """rows/s of the model alone: the served onnxruntime session on checked 100,000-row chunks
    of the file, one call per core at a time (as `score` runs it), nothing read or written.
    No batch scorer on this machine can beat it; /predict/batch spends most of its time on
    JSON, so the ratio of the two is bounded by the model, not by the scorer."""
    from concurrent.futures import ThreadPoolExecutor

    from {{ cookiecutter.package_name }}.batch_scoring import predict_chunk, read_chunks
    from {{ cookiecutter.package_name }}.inference.registry import load_registered_model
    from {{ cookiecutter.package_name }}.inference.validation import Validator

    settings = get_settings()
    model = load_registered_model(settings.model_copy(update={"serve_threads_per_worker": 1}))
    batch = next(iter(read_chunks(parquet_file, 100_000)))
    columns = Validator(settings.unknown_category).arrow(batch).valid_batch()
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda _: predict_chunk(model, columns), range(cores)))  # warm-up
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            list(pool.map(lambda _: predict_chunk(model, columns), range(cores)))
            calls += cores
        elapsed = time.perf_counter() - started
    return calls * batch.num_rows / elapsed


def bench(rows: int, seconds: float, workdir: Path | None) -> dict[str, Any]:
    """Every measurement and the ratios against the target (`summary`)."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        csv_file, parquet_file, tenth_file, records = write_files(folder, rows)
        print(
            f"  (wrote {rows:,} rows as CSV and Parquet in {time.perf_counter() - started:.0f} s)"
        )
        before, before_load = predict_batch(records, seconds)
        print(f"  {'/predict/batch, before':<26} {BATCH} {before:>10,.0f} rows/s  ({before_load})")
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("  (PYTHONDONTWRITEBYTECODE is set here; the score runs cache bytecode as a")
            print("   usual shell does: a first, unmeasured run compiles the modules)")
        score("warm-up (not counted)", tenth_file, max(rows // 10, 1), folder / "out.parquet")
        runs = [
            score("score csv, a tenth", tenth_file, max(rows // 10, 1), folder / "out.parquet"),
            score("score csv", csv_file, rows, folder / "out.parquet"),
            score("score parquet", parquet_file, rows, folder / "out.parquet"),
        ]
        after, after_load = predict_batch(records, seconds)
        print(f"  {'/predict/batch, after':<26} {BATCH} {after:>10,.0f} rows/s  ({after_load})")
        ceiling = model_ceiling(parquet_file, min(seconds, 3.0))
        print(
            f"  {'the model alone':<26} {'100,000-row calls, a core each':<26} {ceiling:>10,.0f} "
            f"rows/s  ({load_average()})"
        )
    baseline = statistics.fmean([before, after])
    tenth, full, parquet = runs
    steady = (full.rows - tenth.rows) / max(full.seconds - tenth.seconds, 1e-9)
    summary = {
        f"score csv ({rows:,} rows) / /predict/batch rows/s": (
            f"{full.rows_per_second / baseline:.1f}x [>= 10x]"
        ),
        f"score parquet ({rows:,} rows) / /predict/batch rows/s": (
            f"{parquet.rows_per_second / baseline:.1f}x [>= 10x]"
        ),
        "score csv after start-up / /predict/batch rows/s": f"{steady / baseline:.1f}x [-]",
        "score parquet / the model alone (its ceiling)": (
            f"{parquet.rows_per_second / ceiling:.0%} [-]"
        ),
        "the model alone / /predict/batch rows/s": f"{ceiling / baseline:.1f}x [-]",
        "score peak RSS, whole file / a tenth of it": (
            f"{full.peak_rss_mb / tenth.peak_rss_mb:.2f} [-]"
        ),
    }
    for run in (full, parquet):
        if run.first_half_rss_mb:
            summary[f"{run.what}: peak RSS, 2nd half of the file / 1st half"] = (
                f"{run.second_half_rss_mb / run.first_half_rss_mb:.2f} [<= 1.1: flat]"
            )
    return {
        "rows": rows,
        "runs": [asdict(run) | {"rows_per_second": run.rows_per_second} for run in runs],
        "score_csv_steady_rows_per_second": steady,
        "predict_batch_rows_per_second": {"before": before, "after": after},
        "model_alone_rows_per_second": ceiling,
        "predict_batch_load": {"before": before_load, "after": after_load},
        "summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of /predict/batch")
    parser.add_argument("--workdir", type=Path, help="where the files go (about 90 bytes a row)")
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    settings = get_settings()
    print(f"model: models:/{settings.model_name}@{settings.model_alias}; {os.cpu_count()} CPUs")
    result = bench(args.rows, args.duration, args.workdir)
    for key, ratio in result["summary"].items():
        print(f"  {key:<52} {ratio}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
