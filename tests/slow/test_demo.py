"""`make demo` is the README's first command: it must work end to end on the host."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.support import TEMPLATE, run

pytestmark = pytest.mark.slow


def test_demo_bakes_trains_serves_predicts_and_benchmarks(tmp_path: Path) -> None:
    # The demo is a real first run, lock included (the hook skips it only for "1").
    env = {"ML_COMPOSE_DEMO_DIR": str(tmp_path / "demo"), "ML_COMPOSE_SKIP_LOCK": ""}
    result = run(
        sys.executable, TEMPLATE / "scripts" / "demo.py", cwd=TEMPLATE, env=env, timeout=1500
    )
    # the answer's JSON; a nested make may print "Leaving directory" after it, as it stops
    answer, _end = json.JSONDecoder().raw_decode(result.stdout.rsplit("\n-> ", 1)[1])
    assert answer["label"] in {"legit", "fraud"}
    assert answer["model_version"] == "1"
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4
    assert (tmp_path / "demo" / "fraud-detector" / "uv.lock").exists()
    check_bench(tmp_path / "demo" / "fraud-detector", tmp_path / "bench.json")


def check_bench(project: Path, report: Path) -> None:
    """`make bench` of the demo project: every case measured, no failed request. Speed is not
    asserted (a benchmark's numbers are read, not tested); both load generators run."""
    for client, extra in (("wrk", ""), ("asyncio", " --skip-mlflow")):
        args = f"--duration 1 --client {client} --score-rows 20000 --output {report}{extra}"
        run("make", "bench", f"BENCH_ARGS={args}", cwd=project, timeout=900)
        data = json.loads(report.read_text())
        cases = {(r["server"], r["case"], r["concurrency"]): r for r in data["rows"]}
        expected = {
            ("ours", "no-op (GET /health)", 16),
            ("ours", "single", 1),
            ("ours", "single", 16),
            ("ours", "batch 64", 4),
            ("ours", "single, logging off", 16),
            ("ours", "single, logging on", 16),
            ("ours", "single, batching off", 16),
            ("ours", "single, batching on", 16),
            ("ours", "single, batching off", 1),
            ("ours", "single, batching on", 1),
            ("ours", "single, drift off", 16),
            ("ours", "single, drift on", 16),
            ("ours", "single, polling off", 16),
            ("ours", "single, polling on", 16),
        }
        if os.environ.get("REDIS_URL") or os.environ.get("TEST_REDIS_URL"):
            expected.add(("ours", "single, cache hit", 16))
        if client == "wrk":
            expected |= {
                (server, case, c)
                for server in ("mlflow serve (native)", "mlflow serve (our ONNX)")
                for case, c in (("single", 1), ("single", 16), ("batch 64", 4))
            }
            # the protocol cases take turns with `mlflow models serve` on the same version
            expected |= {
                ("ours", "turns: no-op (GET /health)", 16),
                ("ours", "turns: /predict", 16),
                ("ours", "turns: invocations split", 16),
                ("ours", "turns: OIP infer", 16),
                ("ours", "turns: OIP infer 64", 4),
                ("mlflow serve (our ONNX)", "turns: invocations split", 16),
                ("mlflow serve (our ONNX)", "turns: invocations split 64", 4),
            }
        assert set(cases) == expected, f"{client}: {sorted(cases)}"
        assert all(r["errors"] == 0 and r["req_s"] > 0 for r in cases.values()), cases
        assert data["model_call_us"]["onnx_1"] > 0 and data["model_call_us"]["native_1"] > 0
        assert "throughput cost of prediction logging" in data["summary"]
        assert "throughput cost of polling the alias every 1 s" in data["summary"]
        assert "adaptive batching, single c=16: req/s on / off" in data["summary"]
        runs = data["scoring"]["runs"]  # batch scoring next to /predict/batch
        assert [r["rows"] for r in runs] == [2000, 20000, 20000]
        assert all(r["rows_per_second"] > 0 and r["peak_rss_mb"] > 0 for r in runs), runs
