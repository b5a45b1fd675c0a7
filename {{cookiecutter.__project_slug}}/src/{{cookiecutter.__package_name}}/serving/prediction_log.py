"""Prediction log: records are buffered in memory and written in batches off the request path.

If the database is down, records wait in a bounded buffer and are written when it is back.
On shutdown the buffer is flushed. When the buffer overflows the oldest records are dropped,
counted (`prediction_log_dropped_total`) and logged. The schema comes from Alembic
(`make migrate`); a missing table is reported like any other write error, and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from sqlalchemy import Engine, insert

from ..db import PredictionRecord, make_engine
from ..settings import Settings
from .metrics import Metrics

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 5.0


class PredictionLogger:
    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics) -> None:
        self.engine = engine
        self.capacity = settings.prediction_log_buffer_size
        self.batch_size = settings.prediction_log_batch_size
        self.interval = settings.prediction_log_flush_seconds
        self.shutdown_timeout = settings.prediction_log_shutdown_seconds
        self.metrics = metrics
        self.buffer: deque[dict[str, Any]] = deque()
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_drop_log = 0.0
        self._dropped_since_log = 0

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> PredictionLogger | None:
        if not settings.prediction_logging:
            return None
        return cls(make_engine(settings.database_url), settings, metrics)

    # --- request path (event loop, never blocks) -----------------------------------------------
    def record(self, rows: list[dict[str, Any]]) -> None:
        overflow = len(self.buffer) + len(rows) - self.capacity
        if overflow > 0:
            self._drop(overflow)
        self.buffer.extend(rows)
        self.metrics.log_queue_depth.set(len(self.buffer))
        if len(self.buffer) >= self.batch_size:
            self._wake.set()

    def _drop(self, count: int) -> None:
        count = min(count, len(self.buffer))
        for _ in range(count):
            self.buffer.popleft()
        self.metrics.log_dropped.inc(count)
        self._dropped_since_log += count
        now = time.monotonic()
        if now - self._last_drop_log > 10:
            log.error(
                "prediction log buffer full (%d records): dropped %d oldest records (%s)",
                self.capacity,
                self._dropped_since_log,
                self.last_error or "database too slow",
            )
            self._last_drop_log, self._dropped_since_log = now, 0

    # --- writer ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log-writer")

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(PredictionRecord), rows)

    async def _flush_once(self) -> bool:
        """Write one batch; False when the write failed (the batch stays buffered)."""
        batch = [self.buffer.popleft() for _ in range(min(self.batch_size, len(self.buffer)))]
        try:
            await asyncio.to_thread(self._write, batch)
        except Exception as exc:
            self.buffer.extendleft(reversed(batch))
            overflow = len(self.buffer) - self.capacity
            if overflow > 0:
                self._drop(overflow)
            self.metrics.log_write_errors.inc()
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if self.last_error is None:
                log.warning("prediction log write failed, buffering: %s", error)
            self.last_error = error
            return False
        finally:
            self.metrics.log_queue_depth.set(len(self.buffer))
        self.metrics.log_written.inc(len(batch))
        if self.last_error is not None:
            log.info("prediction log writes recovered")
            self.last_error = None
        return True

    async def _run(self) -> None:
        backoff = self.interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            backoff = self.interval
            while self.buffer and not self._stopping:
                if not await self._flush_once():
                    backoff = min(MAX_BACKOFF_SECONDS, max(self.interval, backoff) * 2)
                    break

    async def close(self) -> None:
        """Stop the writer and flush what is buffered (bounded by the shutdown timeout)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        deadline = time.monotonic() + self.shutdown_timeout
        while self.buffer and time.monotonic() < deadline:
            if not await self._flush_once():
                await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if self.buffer:
            lost = len(self.buffer)
            self.buffer.clear()
            self.metrics.log_dropped.inc(lost)
            log.error("shutdown: %d prediction records not written (%s)", lost, self.last_error)
        self.metrics.log_queue_depth.set(0)
        self.engine.dispose()

    def check(self) -> str:
        if self.last_error is None:
            return "ok"
        return f"degraded: {len(self.buffer)} records buffered; {self.last_error}"
