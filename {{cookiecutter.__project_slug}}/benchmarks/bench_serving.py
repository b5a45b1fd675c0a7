"""Benchmark the model server against `mlflow models serve` on the same registered model.

    make bench            # or: uv run python benchmarks/bench_serving.py --duration 10

Needs a registered model (`make pipeline`) and the default environment (`uv sync`: mlflow and
pandas for `mlflow models serve`). Both servers run one worker on this machine and are loaded
by the same client in the same run: `wrk` when installed, else a keep-alive asyncio client.
Prints req/s and p50/p99 for single rows at concurrency 1 and 16, 64-row batches, the Redis
cache-hit path (when REDIS_URL is set), prediction logging on, cold start (process start to
ready), and the in-process cost of one model call (the ceiling no server can beat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from {{ cookiecutter.__package_name }}.schema import FEATURES
from {{ cookiecutter.__package_name }}.serving.features import example_record
from {{ cookiecutter.__package_name }}.settings import get_settings

PACKAGE = "{{ cookiecutter.__package_name }}"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- load generator: keep-alive HTTP/1.1 over asyncio streams -----------------------------------
@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        values = sorted(self.latencies_ms)
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


def load(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> Result:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def run(duration: float) -> Result:
        latencies: list[float] = []
        started = time.perf_counter()
        errors = await asyncio.gather(
            *(_worker(port, request, started + duration, latencies) for _ in range(concurrency))
        )
        return Result(len(latencies), sum(errors), time.perf_counter() - started, latencies)

    asyncio.run(run(min(1.0, seconds / 4)))  # warm-up
    return asyncio.run(run(seconds))


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
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

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
    # it execs `uvicorn` from PATH: the one of this environment
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return Server("mlflow models serve", command, port, "/ping", {"PATH": path})


# --- payloads ----------------------------------------------------------------------------------
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


# --- in-process ceiling ------------------------------------------------------------------------
def model_call_us(repeat: int) -> dict[str, float]:
    from {{ cookiecutter.__package_name }}.serving.model import load_registered_model

    settings = get_settings()
    model = load_registered_model(settings)
    record = model.feeds.normalize(example_record())
    costs = {}
    for rows in (1, 64):
        batch = [record] * rows
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

        version = MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        native = mlflow.pyfunc.load_model(f"runs:/{version.run_id}/native")
        numeric = {f.name: "float32" for f in FEATURES if f.kind == "numeric"}
        frame = pd.DataFrame([example_record()]).astype(numeric)
        for _ in range(20):
            native.predict(frame)
        n = max(50, repeat // 20)
        started = time.perf_counter()
        for _ in range(n):  # a request's work: build the frame, predict
            native.predict(pd.DataFrame([example_record()]).astype(numeric))
        costs["native_pyfunc_1"] = (time.perf_counter() - started) / n * 1e6
    except Exception as exc:  # the native flavor is optional for this number
        print(f"  (native model call not measured: {type(exc).__name__}: {exc})")
    return costs


def migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={url}", "upgrade", "head"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--output", type=Path, help="write the numbers as JSON here")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    record = example_record()
    single = json.dumps(record).encode()
    batch64 = json.dumps({"records": [record] * 64}).encode()
    rows: list[dict[str, Any]] = []

    def measure(server: Server, label: str, path: str, body: bytes, c: int, n: int = 1) -> None:
        status, text = server.post(path, body)
        if status != 200:
            raise RuntimeError(f"{server.name} {path}: {status} {text[:300]!r}")
        result = load(server.port, path, body, c, args.duration)
        rows.append(
            {
                "server": server.name,
                "case": label,
                "concurrency": c,
                "req_s": result.rps,
                "rows_s": result.rps * n,
                "p50_ms": result.pct(0.5),
                "p99_ms": result.pct(0.99),
                "errors": result.errors,
            }
        )
        print(
            f"  {server.name:<22} {label:<22} c={c:<3} {result.rps:>9,.0f} req/s "
            f"{result.rps * n:>10,.0f} rows/s  p50 {result.pct(0.5):6.2f} ms  "
            f"p99 {result.pct(0.99):7.2f} ms  errors {result.errors}"
        )

    def alternate(a: Server, b: Server, body: bytes, c: int) -> None:
        results: dict[str, list[Result]] = {"off": [], "on": []}
        for server in (a, b):
            server.post("/predict", body)
        for _ in range(max(2, int(args.duration))):
            results["off"].append(load(a.port, "/predict", body, c, 1.0))
            results["on"].append(load(b.port, "/predict", body, c, 1.0))
        for key, parts in results.items():
            merged = Result(
                sum(p.requests for p in parts),
                sum(p.errors for p in parts),
                sum(p.seconds for p in parts),
                [x for p in parts for x in p.latencies_ms],
            )
            label = f"single, logging {key}"
            rows.append(
                {
                    "server": "ours",
                    "case": label,
                    "concurrency": c,
                    "req_s": merged.rps,
                    "rows_s": merged.rps,
                    "p50_ms": merged.pct(0.5),
                    "p99_ms": merged.pct(0.99),
                    "errors": merged.errors,
                }
            )
            print(
                f"  {'ours':<22} {label:<22} c={c:<3} {merged.rps:>9,.0f} req/s "
                f"{merged.rps:>10,.0f} rows/s  p50 {merged.pct(0.5):6.2f} ms  "
                f"p99 {merged.pct(0.99):7.2f} ms  errors {merged.errors}"
            )

    print(
        f"model: models:/{settings.model_name}@{settings.model_alias} "
        f"({settings.mlflow_tracking_uri}); {os.cpu_count()} CPUs; client: asyncio keep-alive"
    )
    print("in-process model call:")
    costs = model_call_us(2000)
    for key, value in costs.items():
        print(f"  {key:<18} {value:9.1f} us  (ceiling {1e6 / value:>9,.0f} calls/s per core)")

    base_env = {"PREDICTION_LOGGING": "false", "REDIS_URL": ""}
    cold: dict[str, float] = {}
    server = ours(base_env)
    cold["ours"] = server.cold_start
    try:
        measure(server, "single", "/predict", single, 1)
        measure(server, "single", "/predict", single, 16)
        measure(server, "batch 64", "/predict/batch", batch64, 4, 64)
    finally:
        server.stop()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/predictions.db"
        try:
            migrate(url)
        except (subprocess.CalledProcessError, FileNotFoundError):
            print("  (prediction log not measured: no migrations in this project)")
        else:
            # Both servers run at once and take turns under load (1 s slices), so a change in
            # the machine's background load hits both alike.
            plain = ours(base_env)
            logged = ours({**base_env, "PREDICTION_LOGGING": "true", "DATABASE_URL": url})
            try:
                alternate(plain, logged, single, 16)
            finally:
                plain.stop()
                logged.stop()

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
            # the registered version (ONNX flavor, tensor inputs) ...
            "mlflow models serve": (
                f"models:/{settings.model_name}@{settings.model_alias}",
                tensor_payload,
            ),
            # ... and the native model logged in the same run (what mlflow serves without ONNX)
            "mlflow serve, native": (f"runs:/{version.run_id}/native", frame_payload),
        }
        for name, (uri, payload) in targets.items():
            try:
                server = mlflow_serve(uri)
            except (RuntimeError, TimeoutError) as exc:
                print(f"  ({name} {uri} not measured: {str(exc)[-300:]})")
                continue
            server.name = name
            cold[name] = server.cold_start
            try:
                one, many = payload([record]), payload([record] * 64)
                measure(server, "single", "/invocations", one, 1)
                measure(server, "single", "/invocations", one, 16)
                measure(server, "batch 64", "/invocations", many, 4, 64)
            finally:
                server.stop()

    print("cold start (process start to ready):")
    for name, seconds in cold.items():
        print(f"  {name:<22} {seconds:6.2f} s")
    summary = _ratios(rows, costs, cold)
    for key, value in summary.items():
        print(f"  {key:<40} {value}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {"rows": rows, "model_call_us": costs, "cold_start_s": cold, "summary": summary},
                indent=2,
            )
            + "\n"
        )
    return 0


def _ratios(
    rows: list[dict[str, Any]], costs: dict[str, float], cold: dict[str, float]
) -> dict[str, str]:
    def find(server: str, case: str, c: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in rows
                if r["server"] == server and r["case"] == case and r["concurrency"] == c
            ),
            None,
        )

    out: dict[str, str] = {}
    ours16 = find("ours", "single", 16)
    b_ours = find("ours", "batch 64", 4)
    for name in ("mlflow models serve", "mlflow serve, native"):
        theirs16, b_theirs = find(name, "single", 16), find(name, "batch 64", 4)
        if ours16 and theirs16:
            out[f"req/s c=16, ours / {name}"] = f"{ours16['req_s'] / theirs16['req_s']:.1f}x"
            out[f"p99 c=16, ours / {name}"] = f"{ours16['p99_ms'] / theirs16['p99_ms']:.3f}"
        if b_ours and b_theirs:
            out[f"rows/s batch 64, ours / {name}"] = f"{b_ours['rows_s'] / b_theirs['rows_s']:.1f}x"
        if name in cold:
            out[f"cold start, ours / {name}"] = f"{cold['ours'] / cold[name]:.2f}"
    off, on = find("ours", "single, logging off", 16), find("ours", "single, logging on", 16)
    if off and on:
        out["throughput cost of prediction logging"] = f"{1 - on['req_s'] / off['req_s']:.1%}"
    if ours16 and "native_pyfunc_1" in costs:
        ceiling = 1e6 / costs["native_pyfunc_1"]
        out["c=16 vs native model-call ceiling"] = f"{ours16['req_s'] / ceiling:.0%}"
    if ours16:
        out["c=16 vs ONNX model-call ceiling"] = f"{ours16['req_s'] / (1e6 / costs['onnx_1']):.0%}"
    return out


if __name__ == "__main__":
    sys.exit(main())
