"""A loaded registry version that scores column batches: `Predictor` (what `registry.py`
loads, what the scoring service calls, what `score` and `evaluate` run).

Two ways to score: the ONNX graph in onnxruntime (`OnnxScorer`, fed by `FeedBuilder`) or,
for a version registered without ONNX, the native MLflow pyfunc (`NativeScorer`, pandas and
the training framework needed). Both take a validated `ColumnBatch` and give a task-typed
result (`results.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..drift.profile import Profile
from ..schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from .batch import ColumnBatch
from .names import ONNX_NAMES
from .results import Classification

# onnxruntime input type -> numpy dtype of the feed
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.object_,
}


class ModelLoadError(RuntimeError):
    """The registered model cannot be served (reason in the message)."""


# a validated batch -> its result
ScoreFunction = Callable[[ColumnBatch], Classification]


class FeedBuilder:
    """Turns a validated batch into onnxruntime feeds (one `[N, 1]` array per feature, of the
    graph's input type, under the graph's name for it: `names.py`)."""

    def __init__(self, input_types: Mapping[str, str]) -> None:
        self.columns = [
            (f.name, ONNX_NAMES[f.name], ORT_DTYPES[input_types[ONNX_NAMES[f.name]]])
            for f in FEATURES
        ]
        self._local = threading.local()

    def build(self, batch: ColumnBatch) -> dict[str, np.ndarray]:
        columns = batch.columns
        if batch.size == 1:
            return self._one(columns)
        return {
            graph_name: columns[name].astype(dtype, copy=False).reshape(-1, 1)
            for name, graph_name, dtype in self.columns
        }

    def _one(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One row written into this thread's `[1, 1]` arrays: creating fourteen arrays costs a
        twentieth of a single-row request (measured). Reused only after the call that read
        them returned (a thread scores one call at a time; onnxruntime keeps no inputs)."""
        feeds: dict[str, np.ndarray] | None = getattr(self._local, "feeds", None)
        if feeds is None:
            feeds = {graph: np.empty((1, 1), dtype=dtype) for _, graph, dtype in self.columns}
            self._local.feeds = feeds
        for name, graph_name, _ in self.columns:
            feeds[graph_name][0, 0] = columns[name][0]
        return feeds


class OnnxScorer:
    def __init__(self, session: ort.InferenceSession, feed_builder: FeedBuilder) -> None:
        self.session, self.feed_builder = session, feed_builder

    def __call__(self, batch: ColumnBatch) -> Classification:
        labels, probabilities = self.session.run(
            ["label", "probabilities"], self.feed_builder.build(batch)
        )
        return Classification(np.asarray(labels), np.asarray(probabilities))


class NativeScorer:
    """The framework model through its MLflow pyfunc (pandas in, the positive class's
    probability out); about a hundred times slower per row than its ONNX export."""

    def __init__(self, pyfunc: Any) -> None:
        self.pyfunc = pyfunc

    def __call__(self, batch: ColumnBatch) -> Classification:
        import pandas as pd

        # float32 numerics, as in the ONNX graph and the logged signature
        frame = pd.DataFrame(
            {
                f.name: batch.columns[f.name].astype(np.float32)
                if f.kind != "categorical"
                else batch.columns[f.name]
                for f in FEATURES
            },
            columns=list(FEATURE_NAMES),
        )
        scores = np.asarray(self.pyfunc.predict(frame), dtype=np.float64)
        if scores.ndim == 1 and len(CLASS_NAMES) == 2:
            scores = np.column_stack([1.0 - scores, scores])
        scores = scores.reshape(batch.size, len(CLASS_NAMES))
        return Classification(scores.argmax(axis=1), scores)


def session_from_file(model_file: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
    )


def check_interface(session: ort.InferenceSession) -> dict[str, str]:
    """The graph must take one input per schema feature (named by `names.py`) and give
    `label` + `probabilities`."""
    inputs = {i.name: i.type for i in session.get_inputs()}
    expected = set(ONNX_NAMES.values())
    missing = sorted(expected - set(inputs))
    extra = sorted(set(inputs) - expected)
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


def onnx_scorer(model_file: Path, threads: int) -> OnnxScorer:
    session = session_from_file(model_file, threads)
    return OnnxScorer(session, FeedBuilder(check_interface(session)))


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
    reference: Profile | None = None  # drift reference of the version's training run

    def predict(self, batch: ColumnBatch) -> Classification:
        """The result of a validated batch (`validation.py`)."""
        return self.score(batch)

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
