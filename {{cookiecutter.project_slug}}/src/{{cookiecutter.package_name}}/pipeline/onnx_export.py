"""ONNX export with a parity gate: the ONNX graph must reproduce the native model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..models import TabularModel, onnx_feeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    label_flips: int
    rows: int
    passed: bool


def onnx_session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def onnx_proba(session: Any, frame: pd.DataFrame) -> np.ndarray:
    """Fraud probability from an ONNX session (`probabilities[:, 1]`)."""
    _label, probabilities = session.run(["label", "probabilities"], onnx_feeds(frame))
    return np.asarray(probabilities)[:, 1]


def check_parity(
    model: TabularModel, onnx_model: Any, holdout: pd.DataFrame, tolerance: float
) -> Parity:
    native = model.predict_proba(holdout)
    converted = onnx_proba(onnx_session(onnx_model), holdout)
    diff = float(np.max(np.abs(native - converted))) if len(native) else 0.0
    # A class flip counts only away from the threshold (where float noise cannot explain it).
    flips = int(
        np.sum(((native >= 0.5) != (converted >= 0.5)) & (np.abs(native - 0.5) > tolerance))
    )
    return Parity(diff, flips, len(native), diff <= tolerance and flips == 0)


def export(
    model: TabularModel, holdout: pd.DataFrame, tolerance: float
) -> tuple[Any | None, Parity | None]:
    """(onnx model, parity) when conversion worked and parity passed; else (None, parity|None)."""
    try:
        onnx_model = model.to_onnx()
    except Exception as exc:  # any converter failure means: register the native model
        log.warning("ONNX conversion failed, the native model is registered: %s", exc)
        return None, None
    parity = check_parity(model, onnx_model, holdout, tolerance)
    if not parity.passed:
        log.warning(
            "ONNX parity failed (max |diff| %.2e, %d flips): the native model is registered",
            parity.max_abs_diff,
            parity.label_flips,
        )
        return None, parity
    return onnx_model, parity
