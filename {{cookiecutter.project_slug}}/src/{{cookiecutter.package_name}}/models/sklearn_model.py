"""scikit-learn: one-hot preprocessing + HistGradientBoostingClassifier in one Pipeline."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import ThreadpoolController

from .base import (
    FitResult,
    IterationCallback,
    TabularModel,
    features,
    make_preprocessor,
    onnx_initial_types,
)

FRAMEWORK = "sklearn"


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The loaded OpenMP/BLAS libraries, found once: `threadpool_limits()` scans them on every
    call (measured: 3.8 ms, longer than predicting one row)."""
    return ThreadpoolController()


class Model(TabularModel):
    framework = FRAMEWORK

    def __init__(self, params: dict[str, Any], device: str = "cpu") -> None:
        super().__init__(params, "cpu")
        self.pipeline: Pipeline | None = None

    def _classifier(self) -> HistGradientBoostingClassifier:
        p = self.params
        return HistGradientBoostingClassifier(
            learning_rate=float(p.get("learning_rate", 0.1)),
            max_iter=int(p.get("max_iter", 200)),
            max_leaf_nodes=int(p.get("max_leaf_nodes", 31)),
            min_samples_leaf=int(p.get("min_samples_leaf", 20)),
            l2_regularization=float(p.get("l2_regularization", 0.0)),
            early_stopping=True,
            n_iter_no_change=int(p.get("n_iter_no_change", 20)),
            scoring="loss",
            random_state=self.seed,
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
        clf = self._classifier()
        with _thread_pools().limit(limits=self.threads):
            xt = prep.fit_transform(features(x))
            clf.fit(xt, y, X_val=prep.transform(features(x_val)), y_val=y_val)
        self.pipeline = Pipeline([("preprocess", prep), ("classifier", clf)])
        # scores are negative log-loss; entry 0 is the model before the first tree.
        history = [
            (i, {"train_loss": float(-train), "val_loss": float(-val)})
            for i, (train, val) in enumerate(
                zip(clf.train_score_, clf.validation_score_, strict=True)
            )
            if i > 0
        ]
        if on_iteration is not None:  # HistGradientBoosting has no callbacks: report after fit
            for step, metrics in history:
                on_iteration(step, metrics)
        return FitResult(history=history, device="cpu", iterations=int(clf.n_iter_))

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        assert self.pipeline is not None, "fit first"
        with _thread_pools().limit(limits=self.threads):
            proba: np.ndarray = self.pipeline.predict_proba(features(x))[:, 1]
        return proba

    def to_onnx(self) -> Any:
        from skl2onnx import convert_sklearn

        assert self.pipeline is not None, "fit first"
        clf = self.pipeline.named_steps["classifier"]
        return convert_sklearn(
            self.pipeline,
            initial_types=onnx_initial_types(),
            options={id(clf): {"zipmap": False}},
            target_opset={"": 18, "ai.onnx.ml": 3},
        )


def suggest_params(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_iter": trial.suggest_int("max_iter", 50, 400, step=50),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 64, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 10, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
    }
