"""The scoring service: `score(batch)`, the one path every route and protocol scores through —
the per-row cache, adaptive batching, the predictor, the prediction log, the drift window and
the prediction metrics. A route converts its wire format into a validated `ColumnBatch` once
(`inference/validation.py`), calls `score`, and renders the task-typed result it gets back.

The predictor runs inline on the event loop (an ONNX call takes microseconds; a threadpool hop
would cost more than the call); the single rows of concurrent requests share model calls
(`batching.py`). The cache and prediction log are optional parts; the project
may have been generated without their modules.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ..drift.monitor import DriftMonitor
from ..drift.profile import Profile
from ..inference.batch import ColumnBatch
from ..inference.predictor import Predictor
from ..inference.results import Result, UnscorableInput
from ..settings import Settings
from .batching import RowBatcher
from .metrics import Metrics
from .model_manager import ModelManager

__all__ = ["ModelNotReady", "ScoringService", "UnscorableInput"]


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

    async def score(
        self, batch: ColumnBatch, request_id: str, started: float
    ) -> tuple[Predictor, Result]:
        """The result of a validated batch, through the cache (per row), the model (a single
        row batched with the rows of concurrent requests), the prediction log and the drift
        window. The model is taken once: a reload cannot swap it mid-request. Raises
        ModelNotReady, UnscorableInput."""
        model = self.predictor()
        if self.cache is None:
            result = await self._model(model, batch)
        else:
            result = await self._cached(model, batch)
        self._observe(model, request_id, batch, result, started)
        return model, result

    async def _model(self, model: Predictor, batch: ColumnBatch) -> Result:
        if self.batcher is not None and batch.size == 1:
            result = await self.batcher.predict(model, batch)
        else:
            result = model.predict(batch)
        result.check_finite()
        return result

    async def _cached(self, model: Predictor, batch: ColumnBatch) -> Result:
        assert self.cache is not None
        cache = self.cache
        keys = [cache.key(model.name, model.version, r) for r in batch.records()]
        if len(keys) == 1:
            rows = [await cache.get(keys[0])]
        else:
            rows = list(await asyncio.gather(*map(cache.get, keys)))
        todo = [i for i, row in enumerate(rows) if row is None]
        if not todo:
            return Result.from_rows(rows)  # type: ignore[arg-type]
        everything = len(todo) == len(rows)
        fresh = await self._model(model, batch if everything else batch.take(np.asarray(todo)))
        for i, row in zip(todo, fresh.rows(), strict=True):
            cache.set_later(keys[i], row)
            rows[i] = row
        return fresh if everything else Result.from_rows(rows)  # type: ignore[arg-type]

    def _observe(
        self,
        model: Predictor,
        request_id: str,
        batch: ColumnBatch,
        result: Result,
        started: float,
    ) -> None:
        """Metrics, drift window, prediction log: what every scored request feeds."""
        self.metrics.count_predictions(result.class_names())
        if self.drift is not None:
            self.drift.observe(model.version, model.reference, batch.records(), result.monitored())
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
                for position, (record, output) in enumerate(
                    zip(batch.records(), result.rows(), strict=True)
                )
            ]
        )

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
