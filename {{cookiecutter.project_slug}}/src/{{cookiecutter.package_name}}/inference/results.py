"""What the predictor returns: a result typed by the model's task, which every protocol adapter
renders (`/predict`, `/invocations`, Open Inference, `score`'s output columns, the prediction
log, the cache, the drift window).

`Classification` (binary or multiclass: a class per row and the probability of each class) is
the task of this project. Another task is a class with the same methods: a regression result
holds one value per row and renders as `{"prediction": value}`, an OIP `prediction` FP32
tensor and a `prediction` column; the adapters call the methods below and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..schema import CLASS_NAMES


class UnscorableInput(ValueError):
    """The model gave a non-finite score: the input lies far outside what it was trained on."""


@dataclass(slots=True)
class Classification:
    task: ClassVar[str] = "classification"
    labels: np.ndarray  # class index per row [N]
    probabilities: np.ndarray  # [N, len(CLASS_NAMES)], ordered as CLASS_NAMES

    def __len__(self) -> int:
        return len(self.labels)

    def finite(self) -> np.ndarray:
        """True for each row whose scores are all finite."""
        return np.isfinite(self.probabilities).all(axis=1)

    def check_finite(self) -> None:
        """A NaN/inf score cannot be returned as JSON and must never be cached or logged."""
        if len(self) == 1 and all(map(math.isfinite, self.probabilities[0].tolist())):
            return  # one row: a seventh of numpy's whole-array check
        finite = self.finite()
        if not finite.all():
            rows = ", ".join(str(i) for i in np.flatnonzero(~finite)[:10])
            raise UnscorableInput(
                f"the model gave a non-finite score for record(s) {rows}: "
                "feature values are far outside the range it was trained on"
            )

    def take(self, rows: Any) -> Classification:
        return Classification(self.labels[rows], self.probabilities[rows])

    @staticmethod
    def concat(parts: Sequence[Classification]) -> Classification:
        if len(parts) == 1:
            return parts[0]
        return Classification(
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.probabilities for p in parts]),
        )

    # --- renderings ---------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        return [CLASS_NAMES[i] for i in self.labels.tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """One JSON object per row: `/predict`'s answer, the cache entry, the log's output."""
        return [
            {"label": CLASS_NAMES[label], "probabilities": dict(zip(CLASS_NAMES, row, strict=True))}
            for label, row in zip(self.labels.tolist(), self.probabilities.tolist(), strict=True)
        ]

    @staticmethod
    def from_rows(rows: Sequence[dict[str, Any]]) -> Classification:
        """The result of cached rows (`rows()` read back)."""
        index = {name: i for i, name in enumerate(CLASS_NAMES)}
        return Classification(
            np.array([index[r["label"]] for r in rows], dtype=np.int64),
            np.array([[r["probabilities"][c] for c in CLASS_NAMES] for r in rows]),
        )

    def monitored(self) -> list[float]:
        """The score the drift window follows: the last class's probability."""
        return list(self.probabilities[:, -1].tolist())

    def columns(self) -> dict[str, Any]:
        """MLflow's columnar layout (as its ONNX flavor returns): class indices, probabilities."""
        return {"label": self.labels.tolist(), "probabilities": self.probabilities.tolist()}

    def tensors(self) -> dict[str, dict[str, Any]]:
        """Open Inference output tensors by name."""
        n = len(self)
        return {
            "label": {
                "name": "label",
                "datatype": "BYTES",
                "shape": [n],
                "data": self.class_names(),
            },
            "probabilities": {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [n, len(CLASS_NAMES)],
                "data": self.probabilities.ravel().tolist(),
            },
        }

    @staticmethod
    def tensor_metadata() -> list[dict[str, Any]]:
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(CLASS_NAMES)]},
        ]

    def table_columns(self) -> dict[str, Any]:
        """`score`'s output columns: label, probability_<class> per class."""
        import pyarrow as pa
        import pyarrow.compute as pc

        return {
            "label": pc.take(pa.array(CLASS_NAMES), pa.array(self.labels.astype(np.int64))),
            **{
                f"probability_{name}": np.ascontiguousarray(self.probabilities[:, i])
                for i, name in enumerate(CLASS_NAMES)
            },
        }


Result = Classification  # the task of this project (a regression project: `Regression`)
