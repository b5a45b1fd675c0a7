"""The scoring service: what a prediction request does after its route validated it —
the predictor call, the cache, the prediction log, the prediction metrics.

The predictor runs inline on the event loop (an ONNX call takes microseconds; a threadpool hop
would cost more than the call); the single rows of concurrent requests share model calls
(`batching.py`). The cache and prediction log are optional parts; the project
may have been generated without their modules.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ..drift.monitor import DriftMonitor
from ..drift.profile import Profile
from ..schema import CLASS_NAMES, FEATURES
from ..settings import Settings
from .batching import RowBatcher, Scores
from .metrics import Metrics
from .model_manager import ModelManager
from .predictor import Predictor

POSITIVE = CLASS_NAMES[-1]  # the class whose probability the drift window keeps


class UnscorableInput(ValueError):
    """The model gave a non-finite score: the input lies far outside what it was trained on."""


class Cache(Protocol):
    def key(self, model_name: str, model_version: str, record: dict[str, Any]) -> str: ...
    async def get(self, key: str) -> dict[str, Any] | None: ...
    def set_later(self, key: str, value: dict[str, Any]) -> None: ...
    async def check(self) -> str: ...
    async def close(self) -> None: ...


class PredictionSink(Protocol):
    def start(self) -> None: ...
    def record(self, rows: list[dict[str, Any]]) -> None: ...
    def check(self) -> str: ...
    async def close(self) -> None: ...


def optional_module(name: str) -> ModuleType | None:
    """`serving.<name>` when the project was generated with that option, else None."""
    qualified = f"{__package__}.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:
            return None
        raise


class ModelNotReady(RuntimeError):
    pass


def records_of(columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Records from validated columns, with the Python types the request model gives (int for
    integer features, float for the other numerics, str for categoricals)."""
    lists: dict[str, list[Any]] = {}
    for feature in FEATURES:
        values = columns[feature.name]
        if feature.kind == "categorical":
            lists[feature.name] = list(values)
        else:
            lists[feature.name] = list(map(int if feature.dtype == "int" else float, values))
    names = list(lists)
    return [dict(zip(names, row, strict=True)) for row in zip(*lists.values(), strict=True)]


@dataclass
class ScoringService:
    settings: Settings
    metrics: Metrics
    models: ModelManager
    cache: Cache | None = None
    prediction_log: PredictionSink | None = None
    drift: DriftMonitor | None = None
    batcher: RowBatcher | None = field(init=False)

    def __post_init__(self) -> None:
        batching = self.settings.adaptive_batching
        self.batcher = RowBatcher(self.metrics, self.settings.max_batch_size) if batching else None

    async def start(self) -> None:
        cache_module = optional_module("cache")
        if cache_module is not None:
            self.cache = cache_module.PredictionCache.from_settings(self.settings, self.metrics)
        log_module = optional_module("prediction_log")
        if log_module is not None:
            self.prediction_log = log_module.PredictionLogger.from_settings(
                self.settings, self.metrics
            )
            if self.prediction_log is not None:
                self.prediction_log.start()
        self.models.start()

    async def stop(self) -> None:
        await self.models.stop()
        if self.prediction_log is not None:
            await self.prediction_log.close()
        if self.cache is not None:
            await self.cache.close()

    def serving_reference(self) -> tuple[str, Profile | None] | None:
        """(version, drift reference) of the model served now; None before one is loaded."""
        model = self.models.current
        return None if model is None else (model.version, model.reference)

    def predictor(self) -> Predictor:
        predictor = self.models.current
        if predictor is None:
            raise ModelNotReady(self.models.last_error or "model not loaded")
        return predictor

    @staticmethod
    def _check_finite(probabilities: Any) -> None:
        # A NaN/inf score cannot be returned as JSON and must never be cached or logged.
        if len(probabilities) == 1 and all(map(math.isfinite, probabilities[0].tolist())):
            return  # a single row: a seventh of numpy's whole-array check
        finite = np.isfinite(probabilities).all(axis=1)
        if not finite.all():
            rows = ", ".join(str(i) for i in np.flatnonzero(~finite)[:10])
            raise UnscorableInput(
                f"the model gave a non-finite score for record(s) {rows}: "
                "feature values are far outside the range it was trained on"
            )

    def _outputs(self, labels: Any, probabilities: Any) -> list[dict[str, Any]]:
        self._check_finite(probabilities)
        outputs = []
        for label, row in zip(labels.tolist(), probabilities.tolist(), strict=True):
            outputs.append(
                {
                    "label": CLASS_NAMES[label],
                    "probabilities": dict(zip(CLASS_NAMES, row, strict=True)),
                }
            )
        return outputs

    def _log(
        self,
        model: Predictor,
        request_id: str,
        records: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        started: float,
    ) -> None:
        self.metrics.count_predictions(output["label"] for output in outputs)
        if self.drift is not None:
            scores = [output["probabilities"][POSITIVE] for output in outputs]
            self.drift.observe(model.version, model.reference, records, scores)
        self._record(model, request_id, records, outputs, started)

    def _record(
        self,
        model: Predictor,
        request_id: str,
        records: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        started: float,
    ) -> None:
        if self.prediction_log is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        now = datetime.now(UTC)
        self.prediction_log.record(
            [
                {
                    "created_at": now,
                    "request_id": request_id,
                    "position": position,
                    "model_name": model.name,
                    "model_version": model.version,
                    "input": record,
                    "output": output,
                    "latency_ms": latency_ms,
                }
                for position, (record, output) in enumerate(zip(records, outputs, strict=True))
            ]
        )

    async def _score_one(self, model: Predictor, record: dict[str, Any]) -> Scores:
        if self.batcher is None:
            return model.predict([record])
        return await self.batcher.predict(model, record)

    async def predict_one(
        self, record: dict[str, Any], request_id: str, started: float
    ) -> tuple[Predictor, dict[str, Any], bool]:
        model = self.predictor()  # this request keeps this model even if a reload swaps it
        normalized = model.normalize(record)
        key = None
        if self.cache is not None:
            key = self.cache.key(model.name, model.version, normalized)
            cached = await self.cache.get(key)
            if cached is not None:
                self._log(model, request_id, [normalized], [cached], started)
                return model, cached, True
        output = self._outputs(*(await self._score_one(model, normalized)))[0]
        if self.cache is not None and key is not None:
            self.cache.set_later(key, output)
        self._log(model, request_id, [normalized], [output], started)
        return model, output, False

    async def predict_batch(
        self, records: list[dict[str, Any]], request_id: str, started: float
    ) -> tuple[Predictor, list[dict[str, Any]]]:
        model = self.predictor()
        normalized = [model.normalize(r) for r in records]
        if len(normalized) == 1:  # a one-row batch is batched like a single row
            outputs = self._outputs(*(await self._score_one(model, normalized[0])))
        else:
            outputs = self._outputs(*model.predict(normalized))
        self._log(model, request_id, normalized, outputs, started)
        return model, outputs

    def predict_columns(
        self, columns: Mapping[str, Any], request_id: str, started: float
    ) -> tuple[Predictor, list[int], list[list[float]]]:
        """`predict_batch` for validated, normalized columns (one array or list per feature):
        (model, label indices, probabilities). Records are built only for what keeps them
        (the drift window, the prediction log)."""
        model = self.predictor()
        labels, probabilities = model.predict_columns(columns)
        self._check_finite(probabilities)
        indices, scores = labels.tolist(), probabilities.tolist()
        names = [CLASS_NAMES[i] for i in indices]
        self.metrics.count_predictions(names)
        if self.drift is not None or self.prediction_log is not None:
            records = records_of(columns)
            if self.drift is not None:
                positive = [row[-1] for row in scores]  # POSITIVE is the last class
                self.drift.observe(model.version, model.reference, records, positive)
            outputs = [
                {"label": name, "probabilities": dict(zip(CLASS_NAMES, row, strict=True))}
                for name, row in zip(names, scores, strict=True)
            ]
            self._record(model, request_id, records, outputs, started)
        return model, indices, scores

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        model = self.models.current
        dependencies: dict[str, str] = {}
        if self.cache is not None:
            dependencies["redis"] = await self.cache.check()
        if self.prediction_log is not None:
            dependencies["prediction_log"] = self.prediction_log.check()
        body: dict[str, Any] = {
            "ready": model is not None,
            "model_version": model.version if model else None,
            "dependencies": dependencies,
        }
        if model is None:
            body["reason"] = self.models.last_error or "model not loaded"
        return model is not None, body
