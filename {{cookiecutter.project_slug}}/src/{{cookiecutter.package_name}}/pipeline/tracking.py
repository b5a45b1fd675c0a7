"""MLflow set-up (embedded SQLite store or a tracking server) and run provenance tags."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from ..settings import PACKAGE_NAME
from .common import TrackingUnavailable

# No progress bars in logs (artifact downloads); a value set by the user wins.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

VERSIONED_PACKAGES = (
    PACKAGE_NAME.replace("_", "-"),
    "mlflow",
    "dvc",
    "optuna",
    "numpy",
    "pandas",
    "scikit-learn",
    "xgboost",
    "xgboost-cpu",
    "torch",
    "onnx",
    "onnxruntime",
    "skl2onnx",
)


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailable(
            f"MLflow tracking server unreachable at {uri} ({reason}); "
            "start it (make up) or set MLFLOW_TRACKING_URI"
        ) from None


def configure(tracking_uri: str, experiment_name: str) -> str:
    """Point MLflow at the store, create the experiment if needed; return its id."""
    check_reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        # Embedded store: artifacts next to the database file, not in the current directory.
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(experiment_name, artifact_location=artifact_location))


def log_history(run_id: str, history: list[tuple[int, dict[str, float]]]) -> None:
    """Per-iteration metrics in a few batched calls (one call per value is slow over HTTP)."""
    client = MlflowClient()
    metrics = [
        Metric(key=key, value=value, timestamp=0, step=step)
        for step, values in history
        for key, value in values.items()
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)


def file_hash(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def dvc_hash(root: Path, path: Path) -> str | None:
    """The md5 DVC recorded for `path` (dvc.lock or a `.dvc` pointer), if any."""
    from ruamel.yaml import YAML

    rel = Path(path).resolve().relative_to(root.resolve()).as_posix()
    candidates = [root / "dvc.lock", Path(f"{path}.dvc")]
    for pointer in candidates:
        if not pointer.exists():
            continue
        data: Any = YAML(typ="safe").load(pointer.read_text(encoding="utf-8")) or {}
        entries = [
            out for stage in data.get("stages", {}).values() for out in stage.get("outs", [])
        ]
        entries += data.get("outs", [])
        for out in entries:
            if out.get("path") in (rel, Path(rel).name) and out.get("md5"):
                return str(out["md5"])
    return None


def provenance_tags(root: Path, data_file: Path, *, seed: int, device: str) -> dict[str, str]:
    """Where a model came from: code, data, parameters' seed, environment, device."""
    tags = {
        "git.commit": _git(root, "rev-parse", "HEAD") or "unknown",
        "git.dirty": "unknown",
        "data.path": str(Path(data_file).resolve().relative_to(root.resolve())),
        "data.md5": file_hash(data_file) if Path(data_file).exists() else "missing",
        "data.dvc_md5": dvc_hash(root, data_file) or "untracked",
        "lock.sha256": file_hash(root / "uv.lock", "sha256")
        if (root / "uv.lock").exists()
        else "missing",
        "seed": str(seed),
        "device": device,
        "python": platform.python_version(),
    }
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if status is not None:
        tags["git.dirty"] = str(bool(status)).lower()
    for package in VERSIONED_PACKAGES:
        try:
            tags[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return tags
