"""Stage `evaluate`: score the version `train` registered (read from `reports/train.json`) on
the test split, loaded by the server's own loader (`inference.registry`: the model as served)
and scored through the same core (the validator's column batch, `Predictor.predict`);
write `reports/metrics.json` and the plots, log both to the training run and tag the version
with its metrics (the next `promote` compares against them when it is champion)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn import metrics as skm

from .. import schema
from ..data.load import load_table
from ..inference.batch import ColumnBatch
from ..inference.predictor import Predictor
from ..inference.registry import load_version
from ..inference.validation import InvalidBatch, Validator
from ..registry_names import RUN_ID, metric_tag
from .common import Context, add_common_arguments, cli_errors
from .tracking import configure

log = logging.getLogger(__name__)
MAX_CURVE_POINTS = 500


def compute_metrics(y: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = (proba >= threshold).astype(int)
    return {
        "roc_auc": float(skm.roc_auc_score(y, proba)),
        "average_precision": float(skm.average_precision_score(y, proba)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, proba)),
    }


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= MAX_CURVE_POINTS:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, MAX_CURVE_POINTS).round().astype(int))
    return frame.iloc[keep]


def write_plots(
    folder: Path, y: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, pd.DataFrame]:
    """CSV data for `dvc plots` (ROC, precision-recall, confusion matrix)."""
    folder.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = skm.roc_curve(y, proba)
    precision, recall, _ = skm.precision_recall_curve(y, proba)
    tables = {
        "roc": _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr})),
        "precision_recall": _thin(
            pd.DataFrame({"recall": recall[::-1], "precision": precision[::-1]})
        ),
        "confusion": pd.DataFrame(
            {
                "actual": np.asarray(schema.CLASS_NAMES)[y],
                "predicted": np.asarray(schema.CLASS_NAMES)[(proba >= threshold).astype(int)],
            }
        ),
    }
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False, float_format="%.6f", lineterminator="\n")
    return tables


def permutation_importance(
    predict: Callable[[ColumnBatch], np.ndarray],
    batch: ColumnBatch,
    y: np.ndarray,
    seed: int,
    repeats: int = 3,
) -> pd.DataFrame:
    """Drop in average precision when one feature is shuffled: model-agnostic, so it works the
    same for every framework and for the ONNX model as served. One column is swapped per
    call; the batch is validated once."""
    rng = np.random.default_rng(seed)
    baseline = skm.average_precision_score(y, predict(batch))
    rows = []
    for name in schema.FEATURE_NAMES:
        drops = []
        for _ in range(repeats):
            columns = {**batch.columns, name: rng.permutation(batch.columns[name])}
            shuffled = ColumnBatch(columns, batch.size, batch.missing)
            drops.append(baseline - skm.average_precision_score(y, predict(shuffled)))
        rows.append({"feature": name, "importance": float(np.mean(drops))})
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def log_figures(tables: dict[str, pd.DataFrame], values: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(tables["roc"]["fpr"], tables["roc"]["tpr"], label=f"AUC {values['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend()
    mlflow.log_figure(fig, "plots/roc.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    pr = tables["precision_recall"]
    ax.plot(pr["recall"], pr["precision"], label=f"AP {values['average_precision']:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    mlflow.log_figure(fig, "plots/precision_recall.png")
    plt.close(fig)

    matrix = skm.confusion_matrix(
        tables["confusion"]["actual"],
        tables["confusion"]["predicted"],
        labels=list(schema.CLASS_NAMES),
    )
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=schema.CLASS_NAMES,
        yticklabels=schema.CLASS_NAMES,
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix",
    )
    mlflow.log_figure(fig, "plots/confusion_matrix.png")
    plt.close(fig)

    importance = tables["feature_importance"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh(importance["feature"], importance["importance"])
    ax.set(xlabel="drop in average precision when shuffled", title="Permutation importance")
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)


def frame_batch(frame: pd.DataFrame, unknown_category: str) -> ColumnBatch:
    """A frame of features as the server's validated column batch."""
    checked = Validator(unknown_category).frame(frame)
    if checked.problems:
        raise InvalidBatch(checked.problems)
    return checked.batch


def batch_scorer(predictor: Predictor) -> Callable[[ColumnBatch], np.ndarray]:
    """The served predictor on a batch: the positive class's probability of each row."""

    def predict(batch: ColumnBatch) -> np.ndarray:
        return np.asarray(predictor.predict(batch).probabilities)[:, -1]

    return predict


def evaluate(ctx: Context, version: str | None = None) -> dict[str, float]:
    settings = ctx.settings
    configure(settings.mlflow_tracking_uri, settings.experiment_name)
    report = (
        json.loads(ctx.paths.train_report.read_text()) if ctx.paths.train_report.exists() else {}
    )
    version = version or report.get("version")
    if not version:
        raise FileNotFoundError(
            f"{ctx.paths.train_report} not found and no --version given: train first"
        )
    client = MlflowClient()
    run_id = client.get_model_version(settings.model_name, version).tags.get(RUN_ID)
    # As the server loads it, under the same trust setting: a version without ONNX is a pickle
    # that runs code when loaded, so it is evaluated only with TRUST_REGISTRY_CODE_EXECUTION
    # (whoever can register versions could otherwise run code here with `--version N`).
    predictor = load_version(settings, str(version), run_id=run_id)
    test = load_table(ctx.paths.test_split)
    predict = batch_scorer(predictor)
    y = test[schema.TARGET].to_numpy()
    batch = frame_batch(test, settings.unknown_category)
    proba = predict(batch)
    threshold = float(ctx.params["evaluate"]["threshold"])
    values = compute_metrics(y, proba, threshold)
    tables = write_plots(ctx.paths.plots, y, proba, threshold)
    sample = np.arange(min(len(test), int(ctx.params["evaluate"].get("importance_rows", 5000))))
    tables["feature_importance"] = permutation_importance(
        predict,
        batch.take(sample),
        y[sample],
        seed=int(ctx.params["train"].get("seed", 0)),
    )
    tables["feature_importance"].to_csv(
        ctx.paths.plots / "feature_importance.csv",
        index=False,
        float_format="%.6f",
        lineterminator="\n",
    )
    ctx.paths.metrics.write_text(
        json.dumps({k: round(v, 6) for k, v in values.items()}, indent=2) + "\n"
    )
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in values.items()})
        log_figures(tables, values)
    for key, value in values.items():
        client.set_model_version_tag(settings.model_name, version, metric_tag(key), f"{value:.6f}")
    log.info(
        "version %s (%s) on %s test rows: %s",
        version,
        predictor.flavor,
        f"{len(test):,}",
        ", ".join(f"{k}={v:.4f}" for k, v in values.items()),
    )
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--version", help="registered version (default: the one just trained)")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        evaluate(Context.load(args.params), args.version)
        return 0

    return cli_errors(body)
