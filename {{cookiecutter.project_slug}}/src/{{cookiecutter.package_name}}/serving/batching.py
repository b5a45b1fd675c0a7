"""Adaptive batching of single rows: the rows of the requests that reach the model in the same
turn of the event loop are scored in one model call, then each request goes on with its own
row (the idea of Triton's dynamic batcher and MLServer's adaptive batching, without a wait).

Why: under concurrent load the model call of a single row costs several times what it costs in
a tight loop (the HTTP work between two calls leaves onnxruntime's code and the trees out of
the CPU caches; measured in the server: 93 µs a call under load, 25 µs alone), and a call of
eight rows costs about as much as a call of one. Nothing waits for rows to arrive: the batch is
whatever queued while the other requests of this turn ran, so the batch grows only with the
load.

Queueing costs a lone request one loop turn (about 30 µs in the server, measured at
concurrency 1), so the batcher queues only while it finds company: after `LONE_CALLS` one-row
calls in a row it scores each row at once, and one request in `PROBE_EVERY` queues anyway, so
the next burst of concurrent requests turns queueing back on (the requests of a turn join a
queue that is open).

A request keeps the model it took: rows are grouped by model, so a swap between two requests
of one turn scores each with its own. One row the model fails on fails its own request only:
when a batch call raises, its rows are scored one by one.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Histogram

from ..inference.batch import ColumnBatch
from ..inference.predictor import Predictor
from ..inference.results import Result
from .metrics import Metrics

# rows per model call (a power of two per bucket: where the load puts the batches)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LONE_CALLS = 8  # one-row queued calls in a row that turn queueing off
PROBE_EVERY = 8  # while off, one request in this many queues to look for company

Queued = tuple[Predictor, ColumnBatch, "asyncio.Future[Result]"]


class RowBatcher:
    def __init__(self, metrics: Metrics, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows_per_call = Histogram(
            "model_batch_rows",
            "Rows per model call of single-row requests (adaptive batching)",
            buckets=BATCH_BUCKETS,
            registry=metrics.registry,
        )
        self._queue: list[Queued] = []
        self.queueing = True  # False: rows are scored at once (no company found lately)
        self._lone = 0  # one-row queued calls in a row
        self._unqueued = 0  # rows scored at once since queueing went off

    async def predict(self, model: Predictor, row: ColumnBatch) -> Result:
        """The result of a one-row batch, scored with `model`: in one call with the rows of the
        other requests of this loop turn, or at once while queueing is off."""
        if not self._queue and not self.queueing:
            self._unqueued += 1
            if self._unqueued % PROBE_EVERY:
                self.rows_per_call.observe(1)
                return model.predict(row)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)  # after the requests this turn has already started
        self._queue.append((model, row, future))
        return await future

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        if len(queue) > 1:
            self.queueing, self._lone = True, 0
        else:
            self._lone += 1
            if self._lone >= LONE_CALLS:
                self.queueing, self._lone, self._unqueued = False, 0, 0
        by_model: dict[int, list[Queued]] = {}
        for entry in queue:
            by_model.setdefault(id(entry[0]), []).append(entry)
        for entries in by_model.values():
            for start in range(0, len(entries), self.max_rows):
                self._score(entries[start : start + self.max_rows])

    def _score(self, entries: list[Queued]) -> None:
        model = entries[0][0]
        self.rows_per_call.observe(len(entries))
        try:
            result = model.predict(ColumnBatch.concat([row for _, row, _ in entries]))
        except Exception as exc:
            if len(entries) > 1:  # find the row: each request gets its own verdict
                for entry in entries:
                    self._score([entry])
                return
            if not entries[0][2].done():
                entries[0][2].set_exception(exc)
            return
        for i, (_, _, future) in enumerate(entries):
            if not future.done():  # done: cancelled while queued (its client went away)
                future.set_result(result.take(slice(i, i + 1)))
