"""XGBoost: the shared one-hot preprocessing + XGBClassifier (GPU with device=cuda)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.pipeline import Pipeline

from .base import (
    FitResult,
    IterationCallback,
    TabularModel,
    features,
    make_preprocessor,
    onnx_initial_types,
)

FRAMEWORK = "xgboost"
log = logging.getLogger(__name__)


class _Report(xgb.callback.TrainingCallback):
    """Progress every `every` rounds, and the validation log-loss of every boosting round to
    `on_iteration` (Optuna prunes through it)."""

    def __init__(self, on_iteration: IterationCallback | None, total: int, every: int = 50) -> None:
        self.on_iteration = on_iteration
        self.total = total
        self.every = every

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        metrics = {
            "train_loss": float(evals_log["validation_0"]["logloss"][-1]),
            "val_loss": float(evals_log["validation_1"]["logloss"][-1]),
        }
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.total:
            log.info("round %d/%d val_loss=%.4f", epoch + 1, self.total, metrics["val_loss"])
        if self.on_iteration is not None:
            self.on_iteration(epoch + 1, metrics)
        return False


class Model(TabularModel):
    framework = FRAMEWORK

    def __init__(self, params: dict[str, Any], device: str = "cpu") -> None:
        super().__init__(params, device)
        self.pipeline: Pipeline | None = None

    def _classifier(self, on_iteration: IterationCallback | None) -> xgb.XGBClassifier:
        p = self.params
        return xgb.XGBClassifier(
            n_estimators=int(p.get("n_estimators", 200)),
            learning_rate=float(p.get("learning_rate", 0.1)),
            max_depth=int(p.get("max_depth", 6)),
            min_child_weight=float(p.get("min_child_weight", 1.0)),
            subsample=float(p.get("subsample", 1.0)),
            colsample_bytree=float(p.get("colsample_bytree", 1.0)),
            reg_lambda=float(p.get("reg_lambda", 1.0)),
            tree_method="hist",
            device=self.device,
            n_jobs=self.threads,
            random_state=self.seed,
            eval_metric="logloss",
            callbacks=[_Report(on_iteration, int(p.get("n_estimators", 200)))],
        )

    def fit(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        x_val: pd.DataFrame,
        y_val: np.ndarray,
        on_iteration: IterationCallback | None = None,
    ) -> FitResult:
        prep = make_preprocessor()
        xt = prep.fit_transform(features(x))
        xv = prep.transform(features(x_val))
        clf = self._classifier(on_iteration)
        clf.fit(xt, y, eval_set=[(xt, y), (xv, y_val)], verbose=False)
        # Predict (and export) on CPU whatever trained it: ONNX and the server are CPU-only.
        clf.set_params(device="cpu", callbacks=None)
        self.pipeline = Pipeline([("preprocess", prep), ("classifier", clf)])
        evals = clf.evals_result()
        history = [
            (i + 1, {"train_loss": float(t), "val_loss": float(v)})
            for i, (t, v) in enumerate(
                zip(evals["validation_0"]["logloss"], evals["validation_1"]["logloss"], strict=True)
            )
        ]
        return FitResult(history=history, device=self.device, iterations=len(history))

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.pipeline is not None, "fit first"
        proba: np.ndarray = self.pipeline.predict_proba(features(x))[:, 1]
        return proba

    def to_onnx(self) -> Any:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx import convert_sklearn, update_registered_converter
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

        assert self.pipeline is not None, "fit first"
        update_registered_converter(
            xgb.XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        clf = self.pipeline.named_steps["classifier"]
        return convert_sklearn(
            self.pipeline,
            initial_types=onnx_initial_types(),
            options={id(clf): {"zipmap": False}},
            target_opset={"": 18, "ai.onnx.ml": 3},
        )


def suggest_params(trial: Any) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 8),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }
