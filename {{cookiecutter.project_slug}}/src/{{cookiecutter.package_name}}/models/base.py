"""The one model interface every framework implements, and the preprocessing they share.

Preprocessing is the same for all frameworks (and converts to ONNX with skl2onnx, so the graph
imputes and serving needs no second path): categorical columns one-hot encoded with the
schema's categories (unknown values and blanks -> all zeros), numeric columns passed through as
float32, blanks of a nullable numeric feature replaced by the training median. Inputs of the
ONNX graph are one `[None, 1]` tensor per feature, in schema order, named by
`inference/names.py` (the schema's names may hold spaces or `/`); outputs are `label` and
`probabilities`.
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
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder

from .. import schema
from ..inference.names import onnx_names

log = logging.getLogger(__name__)

# (iteration, {metric: value}) -> None; raise to stop (Optuna pruning does).
IterationCallback = Callable[[int, dict[str, float]], None]


def make_preprocessor() -> ColumnTransformer:
    """Columns are picked by position in schema order (what `features` gives): the ONNX graph's
    inputs come in the same order, whatever the names (skl2onnx matches names literally)."""
    position = {name: i for i, name in enumerate(schema.FEATURE_NAMES)}
    categorical = [f for f in schema.FEATURES if f.kind == "categorical"]
    numeric = [f for f in schema.FEATURES if f.kind == "numeric" and not f.nullable]
    blanks = [f for f in schema.FEATURES if f.kind == "numeric" and f.nullable]
    steps: list[tuple[str, Any, list[int]]] = []
    if categorical:
        encoder = OneHotEncoder(
            categories=[list(f.categories) for f in categorical],
            handle_unknown="ignore",
            sparse_output=False,
            dtype=np.float32,
        )
        steps.append(("categorical", encoder, [position[f.name] for f in categorical]))
    if numeric:
        steps.append(("numeric", "passthrough", [position[f.name] for f in numeric]))
    if blanks:
        # keep_empty_features: a column blank in every training row still gives its input
        imputer = SimpleImputer(strategy="median", keep_empty_features=True)
        steps.append(("imputed", imputer, [position[f.name] for f in blanks]))
    return ColumnTransformer(steps, verbose_feature_names_out=False)


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns in schema order: float32 numerics, str categories."""
    out = {}
    for f in schema.FEATURES:
        column = frame[f.name]
        if f.kind == "numeric":
            out[f.name] = column.astype(np.float32)
        else:  # a blank (None, NaN) is "", which the encoder maps to all zeros
            out[f.name] = column.where(column.notna(), "").astype(str)
    return pd.DataFrame(out, index=frame.index)


def onnx_initial_types() -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    names = onnx_names(schema.FEATURE_NAMES)
    return [
        (
            names[f.name],
            FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]),
        )
        for f in schema.FEATURES
    ]


def onnx_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """ONNX inputs for a frame of features: one `[N, 1]` array per feature, by graph name."""
    names = onnx_names(schema.FEATURE_NAMES)
    feeds: dict[str, np.ndarray] = {}
    for f in schema.FEATURES:
        values = frame[f.name].to_numpy()
        if f.kind == "numeric":
            feeds[names[f.name]] = values.astype(np.float32).reshape(-1, 1)
        else:
            column = frame[f.name]
            text = column.where(column.notna(), "").astype(str).to_numpy()
            feeds[names[f.name]] = text.astype(object).reshape(-1, 1)
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
