"""`{{ cookiecutter.package_name }} serve`: uvicorn with the thread pools of every worker limited.

With default settings each worker's OpenMP/BLAS/onnxruntime pools take every core, and a few
workers oversubscribe the machine (throughput collapses, p99 explodes). The limits are set in
the environment before uvicorn starts, so its worker processes inherit them.
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

from ..redaction import RedactingFilter
from ..settings import get_settings

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
APP = f"{__package__}.app:app"


def limit_threads(threads: int) -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with credentials redacted from every record (the
    redaction module), the application's own loggers included through the root logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactingFilter}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["default"], "level": "WARNING"}
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings = get_settings()
    parser.add_argument("--host", default="127.0.0.1", help="bind address (containers: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--workers", type=int, default=settings.serve_workers, help="processes (SERVE_WORKERS)"
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    limit_threads(get_settings().serve_threads_per_worker)
    uvicorn.run(
        APP,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        log_config=log_config(),
        access_log=args.access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )
    return 0
