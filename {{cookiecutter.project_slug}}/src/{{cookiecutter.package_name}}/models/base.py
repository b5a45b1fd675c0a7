"""The one model interface every framework implements, and the preprocessing they share.

Preprocessing is the same for all frameworks (and converts to ONNX with skl2onnx): categorical
columns one-hot encoded with the schema's categories (unknown values -> all zeros), numeric
columns passed through as float32. Inputs of the ONNX graph are one `[None, 1]` tensor per
feature, named as in `schema.FEATURES`; outputs are `label` and `probabilities`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from .. import schema

log = logging.getLogger(__name__)

# (iteration, {metric: value}) -> None; raise to stop (Optuna pruning does).
IterationCallback = Callable[[int, dict[str, float]], None]


def make_preprocessor() -> ColumnTransformer:
    categories = [list(schema.FEATURES_BY_NAME[c].categories) for c in schema.CATEGORICAL_FEATURES]
    return ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    categories=categories,
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float32,
                ),
                list(schema.CATEGORICAL_FEATURES),
            ),
            ("numeric", "passthrough", list(schema.NUMERIC_FEATURES)),
        ],
        verbose_feature_names_out=False,
    )


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns in schema order: float32 numerics, str categories."""
    out = {}
    for f in schema.FEATURES:
        column = frame[f.name]
        out[f.name] = column.astype(np.float32) if f.kind == "numeric" else column.astype(str)
    return pd.DataFrame(out, index=frame.index)


def onnx_initial_types() -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    return [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in schema.FEATURES
    ]


def onnx_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """ONNX inputs for a frame of features: one `[N, 1]` array per feature."""
    feeds: dict[str, np.ndarray] = {}
    for f in schema.FEATURES:
        values = frame[f.name].to_numpy()
        if f.kind == "numeric":
            feeds[f.name] = values.astype(np.float32).reshape(-1, 1)
        else:
            feeds[f.name] = values.astype(str).astype(object).reshape(-1, 1)
    return feeds


@dataclass
class FitResult:
    """Per-iteration history (for MLflow) and what was actually used."""

    history: list[tuple[int, dict[str, float]]]
    device: str
    iterations: int


class TabularModel(ABC):
    """Fit on a frame of features, predict fraud probabilities, export to ONNX."""

    framework: str = ""

    def __init__(self, params: dict[str, Any], device: str = "cpu") -> None:
        self.params = dict(params)
        self.seed = int(self.params.get("seed", 0))
        self.threads = int(self.params.get("threads", 0)) or None
        self.device = device

    @abstractmethod
    def fit(
        self,
        x: pd.DataFrame,
        y: np.ndarray,
        x_val: pd.DataFrame,
        y_val: np.ndarray,
        on_iteration: IterationCallback | None = None,
    ) -> FitResult: ...

    @abstractmethod
    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        """Probability of fraud, shape [N]."""

    @abstractmethod
    def to_onnx(self) -> Any:
        """The fitted model incl. preprocessing as an `onnx.ModelProto`."""

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.params)


def gpu_available_for(framework: str) -> bool:
    if framework == "pytorch":
        try:
            import torch
        except ImportError:
            return False
        return bool(torch.cuda.is_available())
    if framework == "xgboost":
        import shutil
        import subprocess

        import xgboost

        if not xgboost.build_info().get("USE_CUDA") or shutil.which("nvidia-smi") is None:
            return False
        probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False)
        return probe.returncode == 0 and b"GPU" in probe.stdout
    return False


def resolve_device(requested: str, framework: str) -> str:
    """`cuda` when asked for and usable, else `cpu` (with a log line saying why)."""
    if requested == "auto":
        return "cuda" if gpu_available_for(framework) else "cpu"
    if requested == "cuda":
        if framework == "sklearn":
            log.warning("device=cuda requested: scikit-learn trains on CPU")
            return "cpu"
        if not gpu_available_for(framework):
            log.warning("device=cuda requested but no usable GPU found: training on CPU")
            return "cpu"
    return requested
