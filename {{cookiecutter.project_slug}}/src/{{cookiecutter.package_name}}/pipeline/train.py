"""Stage `train`: fit, log to MLflow with provenance, export ONNX, register as `challenger`."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from .. import models, schema
from ..data.load import load_table
from ..models.base import IterationCallback
from .common import Context, add_common_arguments, cli_errors
from .onnx_export import export
from .tracking import configure, log_history, provenance_tags

log = logging.getLogger(__name__)
CHALLENGER = "challenger"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    version: str
    flavor: str
    framework: str
    device: str
    val_average_precision: float
    seconds: float


def pinned(*packages: str) -> list[str]:
    """Exact requirements of the logged model (explicit: MLflow's inference is slow)."""
    found = []
    for package in packages:
        try:
            found.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return found


def split_validation(
    frame: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic stratified validation slice of the training split (early stopping,
    per-iteration metrics, Optuna's objective)."""
    fit, val = train_test_split(
        frame,
        test_size=float(params.get("val_size", 0.15)),
        random_state=int(params.get("seed", 0)),
        stratify=frame[schema.TARGET],
    )
    return fit, val


def fit_model(
    train_params: dict[str, Any], frame: pd.DataFrame, on_iteration: IterationCallback | None = None
) -> tuple[models.TabularModel, models.FitResult, float]:
    """Fit on the training split; return (model, fit result, validation average precision)."""
    fit, val = split_validation(frame, train_params)
    model = models.create(train_params, str(train_params.get("device", "cpu")))
    result = model.fit(
        fit, fit[schema.TARGET].to_numpy(), val, val[schema.TARGET].to_numpy(), on_iteration
    )
    val_ap = float(average_precision_score(val[schema.TARGET], model.predict_proba(val)))
    return model, result, val_ap


def _device(ctx: Context) -> str:
    requested = ctx.settings.device  # DEVICE in the environment wins over params.yaml
    return requested if requested != "auto" else str(ctx.params["train"].get("device", "cpu"))


def train(ctx: Context, *, tracking: bool = True) -> TrainResult:
    """Train on the prepared split and (with tracking) log and register the model."""
    started = time.perf_counter()
    settings = ctx.settings
    # Fail fast (one line) on an unreachable tracking server, before minutes of training.
    experiment_id = (
        configure(settings.mlflow_tracking_uri, settings.experiment_name) if tracking else ""
    )
    train_params = {**ctx.params["train"], "device": _device(ctx)}
    frame = load_table(ctx.paths.train_split)
    test = load_table(ctx.paths.test_split)
    log.info("training a %s model on %s rows", models.FRAMEWORK, f"{len(frame):,}")
    model, result, val_ap = fit_model(train_params, frame)
    log.info(
        "trained %d iterations on %s: validation AP %.4f", result.iterations, result.device, val_ap
    )
    holdout = test.head(int(ctx.params["promote"].get("parity_rows", 5000)))
    onnx_model, parity = export(model, holdout, float(ctx.params["promote"]["parity_tolerance"]))
    if not tracking:
        return TrainResult(
            "",
            "",
            "",
            "onnx" if onnx_model else "native",
            models.FRAMEWORK,
            result.device,
            val_ap,
            time.perf_counter() - started,
        )

    tags = provenance_tags(
        ctx.paths.root, ctx.paths.raw, seed=int(train_params.get("seed", 0)), device=result.device
    )
    tags["framework"] = models.FRAMEWORK
    example = models.features(holdout.head(5))
    feeds_example = models.onnx_feeds(example)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{models.FRAMEWORK}") as run:
        run_id = run.info.run_id
        mlflow.set_tags(tags)
        mlflow.log_params({f"train.{k}": v for k, v in train_params.items()})
        mlflow.log_params({f"prepare.{k}": v for k, v in ctx.params["prepare"].items()})
        log_history(run_id, result.history)
        mlflow.log_metrics({"val_average_precision": val_ap, "iterations": result.iterations})
        if parity is not None:
            mlflow.log_metrics(
                {"onnx_max_abs_diff": parity.max_abs_diff, "onnx_label_flips": parity.label_flips}
            )

        with tempfile.TemporaryDirectory() as tmp:
            artifact = Path(tmp) / "model.joblib"
            joblib.dump(model, artifact)
            from .native import NativeModel

            # No input example here: MLflow would reload the model to validate it (seconds).
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            native_info = mlflow.pyfunc.log_model(
                name="native",
                python_model=NativeModel(),
                artifacts={"model": str(artifact)},
                signature=infer_signature(example, model.predict_proba(example)),
                pip_requirements=pinned(
                    "mlflow",
                    "pandas",
                    "numpy",
                    "scikit-learn",
                    "joblib",
                    "xgboost",
                    "xgboost-cpu",
                    "torch",
                ),
            )
        registered_uri = native_info.model_uri
        flavor = "native"
        if onnx_model is not None:
            outputs = {
                "label": np.zeros(5, dtype=np.int64),
                "probabilities": np.zeros((5, 2), dtype=np.float32),
            }
            onnx_info = mlflow.onnx.log_model(
                onnx_model,
                name="model",
                signature=infer_signature(feeds_example, outputs),
                input_example=feeds_example,
                save_as_external_data=False,
                onnx_execution_providers=["CPUExecutionProvider"],
                pip_requirements=pinned("mlflow", "onnx", "onnxruntime", "numpy"),
            )
            registered_uri, flavor = onnx_info.model_uri, "onnx"
        mlflow.set_tag("flavor", flavor)

    client = MlflowClient()
    version = mlflow.register_model(registered_uri, settings.model_name).version
    version_tags = {
        "flavor": flavor,
        "framework": models.FRAMEWORK,
        "run_id": run_id,
        "git.commit": tags["git.commit"],
        "data.md5": tags["data.md5"],
        "val_average_precision": f"{val_ap:.6f}",
    }
    if parity is not None:
        version_tags["onnx.max_abs_diff"] = f"{parity.max_abs_diff:.3e}"
    for key, value in version_tags.items():
        client.set_model_version_tag(settings.model_name, str(version), key, value)
    client.set_registered_model_alias(settings.model_name, CHALLENGER, str(version))
    out = TrainResult(
        run_id,
        settings.model_name,
        str(version),
        flavor,
        models.FRAMEWORK,
        result.device,
        val_ap,
        time.perf_counter() - started,
    )
    log.info(
        "registered %s version %s (%s) as %s", settings.model_name, version, flavor, CHALLENGER
    )
    ctx.paths.reports.mkdir(parents=True, exist_ok=True)
    ctx.paths.train_report.write_text(json.dumps(asdict(out) | {"seconds": None}, indent=2) + "\n")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--no-tracking", action="store_true", help="train only (no MLflow)")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        train(Context.load(args.params), tracking=not args.no_tracking)
        return 0

    return cli_errors(body)
