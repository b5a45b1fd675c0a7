"""Benchmark the model server against `mlflow models serve` for the same trained model.

    make bench            # or: uv run python benchmarks/bench_serving.py --duration 10

Needs a registered model (`make pipeline`) and the default environment (`uv sync`: mlflow and
pandas for `mlflow models serve`). Every server runs one worker on this machine, with one
OpenMP/BLAS thread, and is loaded by the same client in the same run: `wrk` when installed,
else a keep-alive asyncio client. Two baselines: `mlflow models serve` on the native model
logged by the same run (how MLflow serves a model registered the usual way) and on the
registered ONNX version itself. Prints req/s and p50/p99 for single rows at concurrency 1 and
16, 64-row batches, a no-op route (the HTTP stack's own ceiling), the Redis cache-hit path
(when REDIS_URL or TEST_REDIS_URL is set), prediction logging off and on (taking turns),
adaptive batching off and on (taking turns, c=16 and c=1), the drift gauges off and on
(taking turns, /metrics scraped every 5 s), following the alias off and every 1 s
(MODEL_POLL_SECONDS, taking turns), cold start (process start to ready), the
in-process cost of one model call (the ceiling no server can beat), and the ratios against the
targets of the serving design. The protocols are measured on the same server, taking turns:
MLflow's `/invocations` against `mlflow models serve` with the same `dataframe_split` payloads,
Open Inference Protocol `infer` against `/predict`, `/predict` against the no-op route. Last,
batch scoring (`bench_scoring.py`, `--score-rows`, 10M by default; 0 skips it) against
`/predict/batch` in 1,000-row requests. Every line carries the machine's load average: on a
shared machine, read the ratios (measured side by side), not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from {{ cookiecutter.package_name }}.schema import FEATURES
from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.serving.serve import THREAD_VARIABLES
from {{ cookiecutter.package_name }}.settings import get_settings

PACKAGE = "{{ cookiecutter.package_name }}"
ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The machine's 1/5/15-minute load average: a number measured on a busy machine says so."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- load generator: wrk when installed, else keep-alive HTTP/1.1 over asyncio streams ---------
WRK = shutil.which("wrk")
CLIENT = "wrk" if WRK else "asyncio"  # --client overrides
WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
local file = io.open("{body}", "rb")
wrk.body = file:read("*a")
file:close()
"""
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def merge(cls, parts: list[Result]) -> Result:
        """Several slices of one measurement: counts add up, percentiles are averaged."""
        return cls(
            sum(p.requests for p in parts),
            sum(p.errors for p in parts),
            sum(p.seconds for p in parts),
            statistics.fmean(p.p50_ms for p in parts),
            statistics.fmean(p.p99_ms for p in parts),
        )


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _worker(port: int, request: bytes, stop_at: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                errors += 1
            out.append((time.perf_counter() - started) * 1000)
    finally:
        writer.close()
    return errors


def _load_asyncio(
    port: int, method: str, path: str, body: bytes, concurrency: int, seconds: float, warmup: bool
) -> Result:
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def run(duration: float) -> Result:
        latencies: list[float] = []
        started = time.perf_counter()
        errors = await asyncio.gather(
            *(_worker(port, request, started + duration, latencies) for _ in range(concurrency))
        )
        return Result(
            len(latencies),
            sum(errors),
            time.perf_counter() - started,
            _percentile(latencies, 0.5),
            _percentile(latencies, 0.99),
        )

    if warmup:
        asyncio.run(run(min(1.0, seconds / 4)))
    return asyncio.run(run(seconds))


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * UNITS_MS[match[2]]


def _load_wrk(
    port: int, method: str, path: str, body: bytes, concurrency: int, seconds: float, warmup: bool
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        body_file, script = Path(tmp) / "body.json", Path(tmp) / "request.lua"
        body_file.write_bytes(body)
        script.write_text(WRK_SCRIPT.format(method=method, body=body_file))

        def run(duration: int) -> str:
            command = [WRK or "wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--latency"]
            command += ["-s", str(script), f"http://127.0.0.1:{port}{path}"]
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        if warmup:
            run(1)
        out = run(max(1, round(seconds)))
    total = re.search(r"(\d+) requests in ([0-9.]+)(ms|s|m)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (total and p50 and p99):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Result(
        int(total[1]),
        (int(errors[1]) if errors else 0)
        + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0),
        _wrk_ms(total[2] + total[3]) / 1000,
        _wrk_ms(p50[1]),
        _wrk_ms(p99[1]),
    )


def load(
    port: int,
    path: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    method: str = "POST",
    warmup: bool = True,
) -> Result:
    """Keep-alive load from `concurrency` connections for `seconds` (after a warm-up)."""
    loader = _load_wrk if CLIENT == "wrk" else _load_asyncio
    return loader(port, method, path, body, concurrency, seconds, warmup)


# --- servers -----------------------------------------------------------------------------------
class Server:
    def __init__(
        self,
        name: str,
        command: list[str],
        port: int,
        ready_path: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name, self.port, self.ready_path = name, port, ready_path
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.cold_start = self._wait_ready(started)

    def _wait_ready(self, started: float, timeout: float = 180) -> float:
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"{self.name} exited: {stderr[-2000:]}")
            try:
                url = f"http://127.0.0.1:{self.port}{self.ready_path}"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s")

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        for attempt in range(3):  # a baseline drained of a load run can stall for a while
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
            except TimeoutError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def ours(env: dict[str, str]) -> Server:
    port = free_port()
    command = [sys.executable, "-m", PACKAGE, "serve", "--port", str(port), "--workers", "1"]
    return Server("ours", command, port, "/ready", env)


def mlflow_serve(model_uri: str) -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
    ]
    # It execs `uvicorn` from PATH: the one of this environment. It gets the thread limits our
    # server sets for itself: with the libraries' defaults a tree model's OpenMP pool
    # oversubscribes the cores and mlflow's numbers collapse (an unfair baseline).
    env = {name: "1" for name in THREAD_VARIABLES}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return Server("mlflow models serve", command, port, "/ping", env)


# --- payloads ----------------------------------------------------------------------------------
class Scraper(threading.Thread):
    """GET /metrics of some servers every `every` seconds, as Prometheus would."""

    def __init__(self, ports: list[int], every: float) -> None:
        super().__init__(daemon=True)
        self.ports, self.every, self.done = ports, every, threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            for port in self.ports:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    r.read()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=15)


def tensor_payload(records: list[dict[str, Any]]) -> bytes:
    """`inputs` payload of `mlflow models serve` for the ONNX flavor (one tensor per feature)."""
    return json.dumps(
        {"inputs": {f.name: [[r[f.name]] for r in records] for f in FEATURES}}
    ).encode()


def frame_payload(records: list[dict[str, Any]]) -> bytes:
    columns = [f.name for f in FEATURES]
    return json.dumps(
        {
            "dataframe_split": {
                "columns": columns,
                "data": [[r[c] for c in columns] for r in records],
            }
        }
    ).encode()


def oip_payload(records: list[dict[str, Any]]) -> bytes:
    """Open Inference Protocol infer request: one JSON tensor per feature."""
    from {{ cookiecutter.package_name }}.serving.protocols.open_inference import declared_datatype

    return json.dumps(
        {
            "inputs": [
                {
                    "name": f.name,
                    "shape": [len(records)],
                    "datatype": declared_datatype(f.name),
                    "data": [r[f.name] for r in records],
                }
                for f in FEATURES
            ]
        }
    ).encode()


def take_turns(cases: list[tuple[Server, str, bytes, int]], seconds: float) -> list[Result]:
    """Each (server, path, body, concurrency) loaded in 1 s slices, taking turns: a change in
    the machine's background load hits every case alike (the ratios stay fair). An empty body
    is a GET."""
    for server, path, body, c in cases:
        if body:
            status, text = server.post(path, body)
            if status != 200:
                raise RuntimeError(f"{server.name} {path}: {status} {text[:300]!r}")
        load(server.port, path, body, c, 1.0, "POST" if body else "GET")  # warm-up
    parts: list[list[Result]] = [[] for _ in cases]
    for _ in range(max(2, int(seconds))):
        for part, (server, path, body, c) in zip(parts, cases, strict=True):
            method = "POST" if body else "GET"
            part.append(load(server.port, path, body, c, 1.0, method, warmup=False))
    return [Result.merge(part) for part in parts]


def protocols(
    report: Report, theirs: Server, model_name: str, record: dict[str, Any], seconds: float
) -> None:
    """MLflow's protocol on both servers (the `dataframe_split` body MLflow's own client sends)
    and the Open Inference Protocol next to `/predict`, all taking turns in one run."""
    server = ours({"PREDICTION_LOGGING": "false", "REDIS_URL": ""})
    try:
        infer = f"/v2/models/{model_name}/infer"
        split1, split64 = frame_payload([record]), frame_payload([record] * 64)
        cases = [
            (OURS, "turns: no-op (GET /health)", server, "/health", b"", 16, 1),
            (OURS, "turns: /predict", server, "/predict", json.dumps(record).encode(), 16, 1),
            (OURS, "turns: invocations split", server, "/invocations", split1, 16, 1),
            (theirs.name, "turns: invocations split", theirs, "/invocations", split1, 16, 1),
            (OURS, "turns: OIP infer", server, infer, oip_payload([record]), 16, 1),
            (OURS, "turns: OIP infer 64", server, infer, oip_payload([record] * 64), 4, 64),
            (theirs.name, "turns: invocations split 64", theirs, "/invocations", split64, 4, 64),
        ]
        results = take_turns(
            [(srv, path, body, c) for _, _, srv, path, body, c, _ in cases], seconds
        )
        for (name, case, _, _, _, c, n), result in zip(cases, results, strict=True):
            report.add(name, case, c, result, n)
    finally:
        server.stop()


# --- in-process ceiling ------------------------------------------------------------------------
def model_call_us(repeat: int) -> dict[str, float]:
    from {{ cookiecutter.package_name }}.inference.registry import load_registered_model
    from {{ cookiecutter.package_name }}.inference.validation import Validator

    settings = get_settings()
    model = load_registered_model(settings)
    costs = {}
    for rows in (1, 64):
        batch = Validator(settings.unknown_category).records([example_record()] * rows)
        for _ in range(50):
            model.predict(batch)
        started = time.perf_counter()
        for _ in range(repeat):
            model.predict(batch)
        costs[f"onnx_{rows}"] = (time.perf_counter() - started) / repeat * 1e6
    try:
        import mlflow
        import pandas as pd
        from mlflow import MlflowClient
        from threadpoolctl import threadpool_limits

        version = MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        native = mlflow.pyfunc.load_model(f"runs:/{version.run_id}/native")
        bare = native.unwrap_python_model().model  # the framework model (predict_proba)
        numeric = {f.name: "float32" for f in FEATURES if f.kind == "numeric"}
        frame = pd.DataFrame([example_record()]).astype(numeric)
        n = max(50, repeat // 10)
        with threadpool_limits(1):  # as in a server worker (SERVE_THREADS_PER_WORKER=1)
            for _ in range(20):
                bare.predict_proba(frame)
            started = time.perf_counter()
            for _ in range(n):
                bare.predict_proba(frame)
            costs["native_1"] = (time.perf_counter() - started) / n * 1e6
            started = time.perf_counter()
            for _ in range(n):  # a request's work in a pyfunc server: build the frame, predict
                native.predict(pd.DataFrame([example_record()]).astype(numeric))
            costs["native_pyfunc_1"] = (time.perf_counter() - started) / n * 1e6
    except Exception as exc:  # the native flavor is optional for this number
        print(f"  (native model call not measured: {type(exc).__name__}: {exc})")
    return costs


def alias_check_ms(repeat: int = 30) -> float:
    """CPU ms of one alias check (what MODEL_POLL_SECONDS runs once per interval per worker):
    a bound on the polling cost that the noise of a load test cannot hide."""
    from {{ cookiecutter.package_name }}.inference.registry import resolve_alias

    settings = get_settings()
    resolve_alias(settings)
    started = time.process_time()
    for _ in range(repeat):
        resolve_alias(settings)
    return (time.process_time() - started) / repeat * 1000


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={url}", "upgrade", "head"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


@dataclass
class Report:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, server: str, case: str, c: int, result: Result, n: int = 1) -> None:
        self.rows.append(
            {
                "server": server,
                "case": case,
                "concurrency": c,
                "req_s": result.rps,
                "rows_s": result.rps * n,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "errors": result.errors,
                "load": load_average(),
            }
        )
        print(
            f"  {server:<26} {case:<20} c={c:<3} {result.rps:>8,.0f} req/s "
            f"{result.rps * n:>9,.0f} rows/s  p50 {result.p50_ms:6.2f} ms  "
            f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}  ({load_average()})"
        )

    def drop(self, server: str) -> None:
        self.rows = [row for row in self.rows if row["server"] != server]

    def find(self, server: str, case: str, c: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in self.rows
                if r["server"] == server and r["case"] == case and r["concurrency"] == c
            ),
            None,
        )


OURS = "ours"
MLFLOW_NATIVE = "mlflow serve (native)"
MLFLOW_ONNX = "mlflow serve (our ONNX)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--protocols-only",
        action="store_true",
        help="only /predict, /invocations and OIP infer next to mlflow models serve (ONNX)",
    )
    parser.add_argument(
        "--client", choices=["auto", "wrk", "asyncio"], default="auto", help="load generator"
    )
    parser.add_argument(
        "--score-rows",
        type=int,
        default=10_000_000,
        help="rows of the batch-scoring file (benchmarks/bench_scoring.py); 0 skips it",
    )
    parser.add_argument(
        "--score-workdir", type=Path, help="where its files go (about 90 bytes a row)"
    )
    args = parser.parse_args()
    global CLIENT
    if args.client != "auto":
        if args.client == "wrk" and not WRK:
            parser.error("wrk is not installed (apt-get install wrk, brew install wrk)")
        CLIENT = args.client
    settings = get_settings()
    record = example_record()
    single = json.dumps(record).encode()
    batch64 = json.dumps({"records": [record] * 64}).encode()
    report = Report()

    def measure(server: Server, case: str, path: str, body: bytes, c: int, n: int = 1) -> None:
        if body:
            status, text = server.post(path, body)
            if status != 200:
                raise RuntimeError(f"{server.name} {path}: {status} {text[:300]!r}")
        method = "POST" if body else "GET"
        report.add(server.name, case, c, load(server.port, path, body, c, args.duration, method), n)

    def alternate(off: Server, on: Server, c: int, what: str = "logging") -> list[float]:
        """Both servers run at once and take turns under load (1 s slices, in ABBA order), so
        a change in the machine's background load hits both alike."""
        parts: dict[str, list[Result]] = {"off": [], "on": []}
        for server in (off, on):
            server.post("/predict", single)
            load(server.port, "/predict", single, c, 1.0)  # warm-up
        for turn in range(2 * max(1, round(args.duration / 2))):
            # off-on, then on-off: whichever goes second in a pair (the other's caches just
            # evicted, the CPU's clock just raised) is second as often as it is first
            for key in ("off", "on") if turn % 2 == 0 else ("on", "off"):
                server = off if key == "off" else on
                parts[key].append(load(server.port, "/predict", single, c, 1.0, warmup=False))
        for key, results in parts.items():
            report.add(OURS, f"single, {what} {key}", c, Result.merge(results))
        return [b.rps / a.rps for a, b in zip(parts["off"], parts["on"], strict=True)]

    client = f"wrk ({WRK})" if CLIENT == "wrk" else "asyncio keep-alive (wrk has less overhead)"
    print(
        f"model: models:/{settings.model_name}@{settings.model_alias} "
        f"({settings.mlflow_tracking_uri}); {os.cpu_count()} CPUs; client: {client}"
    )
    print("in-process model call (one thread):")
    costs = model_call_us(200 if args.protocols_only else 2000)
    for key, value in costs.items():
        print(f"  {key:<18} {value:9.1f} us  (ceiling {1e6 / value:>9,.0f} calls/s per core)")

    print("servers, one worker each:")
    base_env = {"PREDICTION_LOGGING": "false", "REDIS_URL": "", "MODEL_POLL_SECONDS": "0"}
    cold: dict[str, float] = {}
    server = ours(base_env)
    cold[OURS] = server.cold_start
    try:
        measure(server, "no-op (GET /health)", "/health", b"", 16)
        measure(server, "single", "/predict", single, 1)
        measure(server, "single", "/predict", single, 16)
        measure(server, "batch 64", "/predict/batch", batch64, 4, 64)
    finally:
        server.stop()

    poll_noise = poll_ms = None
    if not args.protocols_only:  # the prediction log, drift, polling and the cache
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/predictions.db"
            try:
                migrate(url)
            except (subprocess.CalledProcessError, FileNotFoundError):
                print("  (prediction log not measured: no migrations in this project)")
            else:
                plain = ours(base_env)
                logged = ours({**base_env, "PREDICTION_LOGGING": "true", "DATABASE_URL": url})
                try:
                    alternate(plain, logged, 16)
                finally:
                    plain.stop()
                    logged.stop()

        # Adaptive batching (ADAPTIVE_BATCHING, on by default): concurrent single rows share
        # model calls; alone (c=1), a request must not pay for it.
        plain = ours({**base_env, "ADAPTIVE_BATCHING": "false"})
        batching = ours(base_env)
        try:
            alternate(plain, batching, 16, "batching")
            alternate(plain, batching, 1, "batching")
        finally:
            plain.stop()
            batching.stop()

        # Drift: the window on the request path, the statistics at scrape time. Both servers
        # are scraped every 5 s (Prometheus' default here is 15 s): the cost is not understated.
        plain = ours({**base_env, "DRIFT_WINDOW_SIZE": "0"})
        drifting = ours(base_env)
        scraper = Scraper([plain.port, drifting.port], every=5.0)
        try:
            scraper.start()
            alternate(plain, drifting, 16, "drift")
        finally:
            scraper.stop()
            plain.stop()
            drifting.stop()

        # Following the alias (MODEL_POLL_SECONDS, on in Compose): one registry call a second
        # in a worker thread, against a server that never polls.
        plain = ours(base_env)
        polling = ours({**base_env, "MODEL_POLL_SECONDS": "1"})
        try:
            slices = alternate(plain, polling, 16, "polling")
            with urllib.request.urlopen(f"http://127.0.0.1:{polling.port}/model") as response:
                checked = (json.load(response).get("alias_poll") or {}).get("checked_at")
            if not checked:
                raise RuntimeError("the polling server never checked the alias")
            poll_noise = statistics.stdev(slices) / len(slices) ** 0.5 if len(slices) > 1 else 0
            poll_ms = alias_check_ms()
        finally:
            plain.stop()
            polling.stop()

        redis_url = os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL")
        if redis_url:
            server = ours({**base_env, "REDIS_URL": redis_url})
            try:
                measure(server, "single, cache hit", "/predict", single, 16)
            finally:
                server.stop()
        else:
            print("  (cache-hit path not measured: set REDIS_URL)")

    if not args.skip_mlflow:
        from mlflow import MlflowClient

        version = MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
        targets = {
            # the framework model logged in the same run: what `mlflow models serve` serves
            # when a model is registered the usual way (no ONNX export)
            MLFLOW_NATIVE: (f"runs:/{version.run_id}/native", frame_payload),
            # the registered version itself (ONNX flavor, tensor inputs)
            MLFLOW_ONNX: (f"models:/{settings.model_name}/{version.version}", tensor_payload),
        }
        if args.protocols_only:
            del targets[MLFLOW_NATIVE]
        for name, (uri, payload) in targets.items():
            # A baseline can stall after a load run on a busy machine (seen: `mlflow models
            # serve` answering nothing at c=16 right after c=1): start it afresh, once.
            for attempt in (1, 2):
                try:
                    server = mlflow_serve(uri)
                except (RuntimeError, TimeoutError) as exc:
                    print(f"  ({name} {uri} not measured: {str(exc)[-300:]})")
                    break
                server.name = name
                cold[name] = server.cold_start
                try:
                    one, many = payload([record]), payload([record] * 64)
                    measure(server, "single", "/invocations", one, 1)
                    measure(server, "single", "/invocations", one, 16)
                    measure(server, "batch 64", "/invocations", many, 4, 64)
                    if name == MLFLOW_ONNX:
                        protocols(report, server, settings.model_name, record, args.duration)
                    stalled = [r for r in report.rows if r["server"] == name and not r["req_s"]]
                    if not stalled:
                        break
                    problem: Exception = RuntimeError(f"0 req/s in {stalled[0]['case']!r}")
                except TimeoutError as exc:
                    problem = exc
                finally:
                    server.stop()
                if attempt == 2:
                    raise RuntimeError(f"{name} stalled twice: {problem}")
                print(f"  ({name} stalled ({problem}); started afresh and measured again)")
                report.drop(name)

    print("cold start (process start to ready):")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("  (PYTHONDONTWRITEBYTECODE is set: every start compiles its modules; the images")
        print("   compile them at build time, UV_COMPILE_BYTECODE=1)")
    for name, start_s in cold.items():
        print(f"  {name:<26} {start_s:6.2f} s")
    summary = _ratios(report, costs, cold)
    if poll_noise is not None and poll_ms is not None:
        summary["throughput cost of polling: noise (std. error of the slices)"] = (
            f"{poll_noise:.1%} [-]"
        )
        summary["CPU of one alias check / 1 s interval (in-process)"] = (
            f"{poll_ms / 1000:.2%} [< 1%]"
        )
    scoring = None
    if args.score_rows and not args.protocols_only:
        # bench_scoring imports this module by name: let it find this run (and its CLIENT)
        sys.modules.setdefault("bench_serving", sys.modules[__name__])
        from bench_scoring import bench as bench_scoring

        print(f"batch scoring against /predict/batch, {args.score_rows:,} rows:")
        scoring = bench_scoring(args.score_rows, args.duration, args.score_workdir)
        summary.update(scoring["summary"])
    print("ratios (target in brackets; [-]: information):")
    for key, ratio in summary.items():
        print(f"  {key:<52} {ratio}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "rows": report.rows,
                    "model_call_us": costs,
                    "cold_start_s": cold,
                    "scoring": scoring,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def _ratios(report: Report, costs: dict[str, float], cold: dict[str, float]) -> dict[str, str]:
    out: dict[str, str] = {}
    ours16, ours_batch = report.find(OURS, "single", 16), report.find(OURS, "batch 64", 4)
    for name in (MLFLOW_NATIVE, MLFLOW_ONNX):
        theirs16, their_batch = report.find(name, "single", 16), report.find(name, "batch 64", 4)
        if ours16 and theirs16:
            rps = ours16["req_s"] / theirs16["req_s"]
            out[f"req/s single c=16, ours / {name}"] = f"{rps:.1f}x [>= 8x]"
            p99 = ours16["p99_ms"] / theirs16["p99_ms"]
            out[f"p99 single c=16, ours / {name}"] = f"{p99:.3f} [<= 0.2]"
        if ours_batch and their_batch:
            rows = ours_batch["rows_s"] / their_batch["rows_s"]
            out[f"rows/s batch 64, ours / {name}"] = f"{rows:.1f}x [>= 3x]"
        if name in cold:
            out[f"cold start, ours / {name}"] = f"{cold[OURS] / cold[name]:.2f} [< 1]"
    # the protocols: same payloads to both servers, same registered version
    split_ours = report.find(OURS, "turns: invocations split", 16)
    split_theirs = report.find(MLFLOW_ONNX, "turns: invocations split", 16)
    if split_ours and split_theirs:
        rps = split_ours["req_s"] / split_theirs["req_s"]
        out[f"/invocations split c=16, ours / {MLFLOW_ONNX}"] = f"{rps:.1f}x [>= 8x]"
        p99 = split_ours["p99_ms"] / split_theirs["p99_ms"]
        out[f"/invocations p99 c=16, ours / {MLFLOW_ONNX}"] = f"{p99:.3f} [<= 0.2]"
    oip, predict = (
        report.find(OURS, "turns: OIP infer", 16),
        report.find(OURS, "turns: /predict", 16),
    )
    if oip and predict:
        out["OIP infer / /predict req/s, single c=16"] = (
            f"{oip['req_s'] / predict['req_s']:.0%} [>= 85%]"
        )
    noop = report.find(OURS, "turns: no-op (GET /health)", 16)
    if noop and predict:
        out["/predict / no-op route req/s, single c=16 (taking turns)"] = (
            f"{predict['req_s'] / noop['req_s']:.0%} [>= 60%]"
        )
    oip64 = report.find(OURS, "turns: OIP infer 64", 4)
    split64 = report.find(MLFLOW_ONNX, "turns: invocations split 64", 4)
    if oip64 and split64:
        rows = oip64["rows_s"] / split64["rows_s"]
        out[f"rows/s OIP 64 / {MLFLOW_ONNX} split 64"] = f"{rows:.1f}x [>= 3x]"
    off = report.find(OURS, "single, logging off", 16)
    on = report.find(OURS, "single, logging on", 16)
    if off and on:
        cost = 1 - on["req_s"] / off["req_s"]
        out["throughput cost of prediction logging"] = f"{cost:.1%} [<= 10%]"
    for c in (16, 1):
        off = report.find(OURS, "single, batching off", c)
        on = report.find(OURS, "single, batching on", c)
        if off and on:
            out[f"adaptive batching, single c={c}: req/s on / off"] = (
                f"{on['req_s'] / off['req_s']:.2f}x [-]"
            )
    off = report.find(OURS, "single, drift off", 16)
    on = report.find(OURS, "single, drift on", 16)
    if off and on:
        cost = 1 - on["req_s"] / off["req_s"]
        out["throughput cost of the drift gauges"] = f"{cost:.1%} [<= 5%]"
    off = report.find(OURS, "single, polling off", 16)
    on = report.find(OURS, "single, polling on", 16)
    if off and on:
        cost = 1 - on["req_s"] / off["req_s"]
        out["throughput cost of polling the alias every 1 s"] = f"{cost:.1%} [< 1%]"
    if ours16:
        if "native_1" in costs:
            share = ours16["req_s"] / (1e6 / costs["native_1"])
            out["single c=16 / native model-call ceiling"] = f"{share:.0%} [>= 75%]"
        share = ours16["req_s"] / (1e6 / costs["onnx_1"])
        out["single c=16 / ONNX model-call ceiling"] = f"{share:.0%} [-]"
        noop = report.find(OURS, "no-op (GET /health)", 16)
        if noop:
            share = ours16["req_s"] / noop["req_s"]
            out["single c=16 / no-op route of our server"] = f"{share:.0%} [-]"
            theirs = report.find(MLFLOW_ONNX, "single", 16)
            if theirs:  # what no FastAPI app on this stack could beat
                ceiling = noop["req_s"] / theirs["req_s"]
                out[f"no-op route of our server / {MLFLOW_ONNX}"] = f"{ceiling:.1f}x [-]"
    return out


if __name__ == "__main__":
    sys.exit(main())
