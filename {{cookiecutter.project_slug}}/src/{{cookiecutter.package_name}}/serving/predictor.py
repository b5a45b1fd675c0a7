"""A loaded registry version that scores records: `Predictor` (what `registry.py` loads, what
the scoring service calls and what evaluation measures).

Two ways to score: the ONNX graph in onnxruntime (`OnnxScorer`, fed by `FeedBuilder`) or,
for a version registered without ONNX, the native MLflow pyfunc (`NativeScorer`, pandas and
the training framework needed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..drift.profile import Profile
from ..schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from .requests import UNKNOWN_CATEGORY

# onnxruntime input type -> numpy dtype of the feed
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.object_,
}

# The inputs of a native (pyfunc) model as an ONNX graph would declare them: for normalization.
SCHEMA_INPUT_TYPES = {
    f.name: "tensor(string)" if f.kind == "categorical" else "tensor(float)" for f in FEATURES
}

NUMERIC_DTYPES = {f.name: "float32" for f in FEATURES if f.kind != "categorical"}


class ModelLoadError(RuntimeError):
    """The registered model cannot be served (reason in the message)."""


# normalized records -> (label indices [N], probabilities [N, n_classes])
ScoreFunction = Callable[[list[dict[str, Any]]], tuple[np.ndarray, np.ndarray]]


class FeedBuilder:
    """Turns validated records into onnxruntime feeds (one `[N, 1]` array per feature)."""

    def __init__(self, input_types: Mapping[str, str], unknown_category: str) -> None:
        self.columns: list[tuple[str, Any, frozenset[str] | None]] = []
        for feature in FEATURES:
            dtype = ORT_DTYPES[input_types[feature.name]]
            known = (
                frozenset(feature.categories)
                if feature.kind == "categorical" and unknown_category == "unknown"
                else None
            )
            self.columns.append((feature.name, dtype, known))
        self._local = threading.local()

    def normalize(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the model sees it (unknown categories mapped), JSON-ready."""
        out = dict(record)
        for name, _dtype, known in self.columns:
            if known is not None and out[name] not in known:
                out[name] = UNKNOWN_CATEGORY
        return out

    def build(self, records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        n = len(records)
        if n == 1:
            return self._one(records[0])
        return {
            name: np.array([r[name] for r in records], dtype=dtype).reshape(n, 1)
            for name, dtype, _known in self.columns
        }

    def _one(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One row written into this thread's `[1, 1]` arrays: creating fourteen arrays costs a
        twentieth of a single-row request (measured). Reused only after the call that read
        them returned (a thread scores one call at a time; onnxruntime does not keep inputs)."""
        feeds: dict[str, np.ndarray] | None = getattr(self._local, "feeds", None)
        if feeds is None:
            feeds = {name: np.empty((1, 1), dtype=dtype) for name, dtype, _known in self.columns}
            self._local.feeds = feeds
        for name, array in feeds.items():
            array[0, 0] = record[name]
        return feeds

    def build_columns(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Feeds from validated, normalized whole columns (numpy arrays or lists of N values):
        no per-row Python work (batch scoring, columnar request bodies)."""
        return {
            name: np.asarray(columns[name], dtype=dtype).reshape(-1, 1)
            for name, dtype, _known in self.columns
        }


class OnnxScorer:
    def __init__(self, session: ort.InferenceSession, feed_builder: FeedBuilder) -> None:
        self.session, self.feed_builder = session, feed_builder

    def __call__(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self.session.run(
            ["label", "probabilities"], self.feed_builder.build(records)
        )
        return np.asarray(labels), np.asarray(probabilities)

    def columns(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self.session.run(
            ["label", "probabilities"], self.feed_builder.build_columns(columns)
        )
        return np.asarray(labels), np.asarray(probabilities)


class NativeScorer:
    """The framework model through its MLflow pyfunc (pandas in, the positive class's
    probability out); about a hundred times slower per row than its ONNX export."""

    def __init__(self, pyfunc: Any) -> None:
        self.pyfunc = pyfunc

    def __call__(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd

        # float32 numerics, as in the ONNX graph and the logged signature
        frame = pd.DataFrame.from_records(records, columns=list(FEATURE_NAMES)).astype(
            NUMERIC_DTYPES
        )
        scores = np.asarray(self.pyfunc.predict(frame), dtype=np.float64)
        if scores.ndim == 1 and len(CLASS_NAMES) == 2:
            scores = np.column_stack([1.0 - scores, scores])
        scores = scores.reshape(len(records), len(CLASS_NAMES))
        return scores.argmax(axis=1), scores


def session_from_file(model_file: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
    )


def check_interface(session: ort.InferenceSession) -> dict[str, str]:
    """The graph must take one input per schema feature and give `label` + `probabilities`."""
    inputs = {i.name: i.type for i in session.get_inputs()}
    missing = sorted(set(FEATURE_NAMES) - set(inputs))
    extra = sorted(set(inputs) - set(FEATURE_NAMES))
    if missing or extra:
        raise ModelLoadError(
            f"model inputs do not match schema.FEATURES: missing {missing}, unexpected {extra}"
        )
    unsupported = {name: t for name, t in inputs.items() if t not in ORT_DTYPES}
    if unsupported:
        raise ModelLoadError(f"unsupported ONNX input types: {unsupported}")
    outputs = {o.name for o in session.get_outputs()}
    if not {"label", "probabilities"} <= outputs:
        raise ModelLoadError(f"model outputs must include label and probabilities, got {outputs}")
    return inputs


def onnx_scorer(model_file: Path, threads: int, unknown_category: str) -> OnnxScorer:
    session = session_from_file(model_file, threads)
    return OnnxScorer(session, FeedBuilder(check_interface(session), unknown_category))


@dataclass
class Predictor:
    """One registered version, loaded: its identity and the function that scores it."""

    name: str
    version: str
    alias: str
    run_id: str | None
    flavor: str
    loaded_at: datetime
    signature: dict[str, Any]
    score: ScoreFunction
    feed_builder: FeedBuilder
    reference: Profile | None = None  # drift reference of the version's training run

    def normalize(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return self.feed_builder.normalize(record)

    def predict(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(label indices [N], probabilities [N, n_classes]) for normalized records."""
        return self.score(records)

    def predict_columns(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The same for validated, normalized columns (one array or list per feature)."""
        if isinstance(self.score, OnnxScorer):
            return self.score.columns(columns)
        n = len(columns[FEATURE_NAMES[0]])
        lists = {name: np.asarray(columns[name]).tolist() for name in FEATURE_NAMES}
        return self.score([{name: lists[name][i] for name in FEATURE_NAMES} for i in range(n)])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "flavor": self.flavor,
            "loaded_at": self.loaded_at.isoformat(),
            "signature": self.signature,
            "classes": list(CLASS_NAMES),
        }
