"""Stage `train`: fit, export ONNX, log to MLflow with provenance, register as `challenger`,
write `reports/train.json` (the version, for `evaluate` and `promote`). `train()` runs the
steps in that order; each is a function of its own."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
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

from .. import models, registry_names, schema
from ..data.load import load_table
from ..drift.profile import build_profile, log_profile
from ..models.base import IterationCallback
from .common import Context, add_common_arguments, cli_errors
from .onnx_export import Parity, export
from .tracking import configure, log_history, provenance_tags

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What `train()` returns; with tracking also `reports/train.json`, the hand-over."""

    run_id: str
    model_name: str
    version: str
    flavor: str
    framework: str
    device: str
    val_average_precision: float


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


@dataclass(frozen=True)
class LoggedModel:
    """What one tracked training run logged: the run and the model to register."""

    run_id: str
    model_uri: str
    flavor: str


def log_training(
    ctx: Context,
    run_id: str,
    train_params: dict[str, Any],
    result: models.FitResult,
    val_ap: float,
    tags: dict[str, str],
    parity: Parity | None,
) -> None:
    """Tags, parameters, per-iteration history and metrics of the active run."""
    mlflow.set_tags(tags)
    mlflow.log_params({f"train.{k}": v for k, v in train_params.items()})
    mlflow.log_params({f"prepare.{k}": v for k, v in ctx.params["prepare"].items()})
    log_history(run_id, result.history)
    mlflow.log_metrics({"val_average_precision": val_ap, "iterations": result.iterations})
    if parity is not None:
        mlflow.log_metrics(
            {"onnx_max_abs_diff": parity.max_abs_diff, "onnx_label_flips": parity.label_flips}
        )


def log_native_model(model: models.TabularModel, example: pd.DataFrame) -> str:
    """The framework model as an MLflow pyfunc (artifact `native`); its model URI."""
    from .native import NativeModel

    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / "model.joblib"
        joblib.dump(model, artifact)
        # No input example here: MLflow would reload the model to validate it (seconds).
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        info = mlflow.pyfunc.log_model(
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
    return str(info.model_uri)


def log_onnx_model(onnx_model: Any, example: pd.DataFrame) -> str:
    """The ONNX export (artifact `model`, what the server runs); its model URI."""
    feeds_example = models.onnx_feeds(example)
    outputs = {
        "label": np.zeros(len(example), dtype=np.int64),
        "probabilities": np.zeros((len(example), 2), dtype=np.float32),
    }
    info = mlflow.onnx.log_model(
        onnx_model,
        name="model",
        signature=infer_signature(feeds_example, outputs),
        input_example=feeds_example,
        save_as_external_data=False,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=pinned("mlflow", "onnx", "onnxruntime", "numpy"),
    )
    return str(info.model_uri)


def log_models(
    run_id: str, model: models.TabularModel, onnx_model: Any, holdout: pd.DataFrame
) -> LoggedModel:
    """Log the native model, and the ONNX export when it passed its parity check, to the
    active run; the ONNX model is the one registered when there is one."""
    example = models.features(holdout.head(5))
    model_uri, flavor = log_native_model(model, example), "native"
    if onnx_model is not None:
        model_uri, flavor = log_onnx_model(onnx_model, example), "onnx"
    mlflow.set_tag(registry_names.FLAVOR, flavor)
    return LoggedModel(run_id, model_uri, flavor)


def register(model_name: str, logged: LoggedModel, version_tags: dict[str, str]) -> str:
    """Register the logged model as a new version, tag it, point `challenger` at it."""
    client = MlflowClient()
    version = str(mlflow.register_model(logged.model_uri, model_name).version)
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, registry_names.CHALLENGER, version)
    log.info(
        "registered %s version %s (%s) as %s",
        model_name,
        version,
        logged.flavor,
        registry_names.CHALLENGER,
    )
    return version


def version_tags(
    logged: LoggedModel, tags: dict[str, str], val_ap: float, parity: Parity | None
) -> dict[str, str]:
    out = {
        registry_names.FLAVOR: logged.flavor,
        registry_names.FRAMEWORK: models.FRAMEWORK,
        registry_names.RUN_ID: logged.run_id,
        "git.commit": tags["git.commit"],
        "data.md5": tags["data.md5"],
        "val_average_precision": f"{val_ap:.6f}",
    }
    if parity is not None:
        out["onnx.max_abs_diff"] = f"{parity.max_abs_diff:.3e}"
    return out


def write_report(ctx: Context, result: TrainResult) -> None:
    """`reports/train.json`: the hand-over to `evaluate` and `promote` (the version)."""
    ctx.paths.reports.mkdir(parents=True, exist_ok=True)
    ctx.paths.train_report.write_text(json.dumps(asdict(result), indent=2) + "\n")


def train(ctx: Context, *, tracking: bool = True) -> TrainResult:
    """Fit on the prepared split, export to ONNX and (with tracking) log the run, register the
    version as `challenger` and write `reports/train.json`."""
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
        flavor = "onnx" if onnx_model else "native"
        return TrainResult("", "", "", flavor, models.FRAMEWORK, result.device, val_ap)

    tags = provenance_tags(
        ctx.paths.root, ctx.paths.raw, seed=int(train_params.get("seed", 0)), device=result.device
    )
    tags[registry_names.FRAMEWORK] = models.FRAMEWORK
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{models.FRAMEWORK}") as run:
        run_id = run.info.run_id
        log_training(ctx, run_id, train_params, result, val_ap, tags, parity)
        # drift reference of this version: training features, fraud scores on the test split
        log_profile(build_profile(frame, model.predict_proba(models.features(test))))
        logged = log_models(run_id, model, onnx_model, holdout)
    version = register(settings.model_name, logged, version_tags(logged, tags, val_ap, parity))
    out = TrainResult(
        run_id,
        settings.model_name,
        version,
        logged.flavor,
        models.FRAMEWORK,
        result.device,
        val_ap,
    )
    write_report(ctx, out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--no-tracking", action="store_true", help="train only (no MLflow)")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        train(Context.load(args.params), tracking=not args.no_tracking)
        return 0

    return cli_errors(body)
