"""Prediction log: records are buffered in memory and written in batches off the request path.

If the database is down, records wait in a bounded buffer and are written when it is back.
On shutdown the buffer is flushed. When the buffer overflows the oldest records are dropped,
counted (`prediction_log_dropped_total`) and logged. The schema comes from Alembic
(`make migrate`); a missing table is reported like any other write error, and retried.

A failed write shows at once: `/ready` lists the prediction log as `failing` with the reason and
its fix (a missing table: `make migrate`), and `prediction_log_failing{reason=...}` is 1, from
the first failed write until one succeeds; serving goes on meanwhile. On shutdown the flush is
bounded by PREDICTION_LOG_SHUTDOWN_SECONDS: a write still in flight then is given up (the writer
process is killed, its transaction rolls back), and every record not written is counted and
logged.

The inserts run in a child process (`WriterProcess`): JSON encoding and the database driver
then use another core instead of the server's GIL. Written from a thread of the server, the
same log cost 16% of its single-row throughput; handing a batch to the child costs the
pickling of the batch (benchmarks/bench_serving.py measures both servers side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from ..db import PredictionRecord, make_engine
from ..redaction import redact
from ..settings import Settings
from .metrics import Metrics

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
# reason -> (what the error says, lower case; the fix). First match wins; the last catches all.
FAILURES: dict[str, tuple[tuple[str, ...], str]] = {
    "credentials": (
        ("authentication failed", "no password supplied", 'role "', 'database "'),
        "check the user, password and database of DATABASE_URL (PGPASSWORD, *_PASSWORD_FILE)",
    ),
    "missing_table": (
        ("no such table", "does not exist", "undefinedtable"),
        "create the schema: `make migrate` (alembic upgrade head; Compose: the migrate service)",
    ),
    "permission": (
        ("permission denied", "insufficientprivilege"),
        "grant the server's role INSERT on prediction_log (docker/postgres/create-databases.sh)",
    ),
    "read_only": (
        ("read-only", "readonly", "read only"),
        "the database refuses writes: point DATABASE_URL at a writable primary",
    ),
    "unavailable": (
        ("connection", "timeout", "timed out", "could not", "eof", "broken pipe"),
        "the database is unreachable: records are buffered and retried until it is back",
    ),
    "other": ((), "see the server log"),
}


def classify(error: str) -> str:
    """The FAILURES reason of a write error."""
    text = error.lower()
    for reason, (needles, _fix) in FAILURES.items():
        if any(needle in text for needle in needles):
            return reason
    return "other"


class PredictionLogWriteError(RuntimeError):
    """The writer process could not insert a batch (its reason in the message)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _writer_main(fd: int) -> None:
    """Child process: insert each batch received, answer (ok, error). Exits when the server
    sends None or goes away (EOF), never on a signal: Ctrl-C reaches the whole process group,
    and the server still needs this process to flush its buffer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        url = conn.recv()
    except EOFError:
        return
    engine = make_engine(url)
    try:
        while True:
            try:
                rows = conn.recv()
            except EOFError:
                return
            if rows is None:
                return
            try:
                with engine.begin() as connection:
                    connection.execute(insert(PredictionRecord), rows)
            except Exception as exc:
                conn.send((False, _first_line(exc)))
            else:
                conn.send((True, None))
    finally:
        engine.dispose()


class WriterProcess:
    """The server's handle on the writer child (`python -m <this module>`), (re)started on
    demand: a child that died costs one failed, retried batch.

    A plain subprocess over a socketpair rather than `multiprocessing`: its spawn start method
    re-imports the caller's main script, which breaks servers started from a script without a
    `__main__` guard. The database URL goes over the socket, never on the command line.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        # monotonic time at which a write waiting for its answer gives up (shutdown)
        self.give_up_at: float | None = None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._discard()
        ours, theirs = socket.socketpair()
        with ours, theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                # the child imports this package from wherever the server found it
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            conn = Connection(ours.detach())
        conn.send(self.url)
        self._process, self._conn = process, conn

    def write(self, rows: list[dict[str, Any]], timeout: float = WRITE_TIMEOUT_SECONDS) -> None:
        """Blocking (call it in a thread); raises when the batch was not written."""
        self.start()
        assert self._conn is not None
        deadline = time.monotonic() + timeout
        try:
            self._conn.send(rows)
            # in slices, so that a shutdown can end the wait (give_up_at) before the timeout
            while not self._conn.poll(POLL_SECONDS):
                now = time.monotonic()
                if self.give_up_at is not None and now >= self.give_up_at:
                    raise TimeoutError("given up at shutdown: the write was still in flight")
                if now >= deadline:
                    raise TimeoutError(f"no answer from the writer process in {timeout:.1f}s")
            ok, error = self._conn.recv()
        except (OSError, EOFError, TimeoutError):
            self._discard()  # dead or stuck: the next write starts a new one
            raise
        if not ok:
            raise PredictionLogWriteError(error)

    def stop(self, timeout: float = 5.0) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout)
        self._discard()

    def _discard(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None


class PredictionLogger:
    def __init__(self, writer: WriterProcess, settings: Settings, metrics: Metrics) -> None:
        self.writer = writer
        self.capacity = settings.prediction_log_buffer_size
        self.batch_size = settings.prediction_log_batch_size
        self.interval = settings.prediction_log_flush_seconds
        self.shutdown_timeout = settings.prediction_log_shutdown_seconds
        # this part's own metrics, on the app's registry
        r = metrics.registry
        self.queue_depth = Gauge(
            "prediction_log_queue_depth", "Prediction records waiting to be written", registry=r
        )
        self.queue_capacity = Gauge(
            "prediction_log_queue_capacity",
            "Prediction records the buffer holds before it drops (PREDICTION_LOG_BUFFER_SIZE)",
            registry=r,
        )
        self.queue_capacity.set(self.capacity)
        self.written, self.dropped, self.write_errors = (
            Counter(name, help_text, registry=r)
            for name, help_text in (
                ("prediction_log_written", "Prediction records written"),
                (
                    "prediction_log_dropped",
                    "Prediction records dropped (buffer overflow or unflushed at shutdown)",
                ),
                ("prediction_log_write_errors", "Failed batch writes (retried)"),
            )
        )
        failing = Gauge(
            "prediction_log_failing",
            "1 while the last write failed, labelled with why (/ready says the fix)",
            ["reason"],
            registry=r,
        )
        for reason in FAILURES:
            failing.labels(reason=reason).set_function(functools.partial(self._failing, reason))
        self.buffer: deque[dict[str, Any]] = deque()
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_drop_log = 0.0
        self._dropped_since_log = 0
        # read when /metrics is scraped: nothing to update per request
        self.queue_depth.set_function(lambda: len(self.buffer))

    def _failing(self, reason: str) -> float:
        return float(self.failure == reason)

    @property
    def failure(self) -> str | None:
        """The FAILURES reason of the last write, None when it succeeded."""
        return None if self.last_error is None else classify(self.last_error)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> PredictionLogger | None:
        if not settings.prediction_logging:
            return None
        make_url(settings.database_url)  # a malformed URL fails at startup
        return cls(WriterProcess(settings.database_url), settings, metrics)

    # --- request path (event loop, never blocks) -----------------------------------------------
    def record(self, rows: list[dict[str, Any]]) -> None:
        overflow = len(self.buffer) + len(rows) - self.capacity
        if overflow > 0:
            self._drop(overflow)
        self.buffer.extend(rows)
        if len(self.buffer) >= self.batch_size:
            self._wake.set()

    def _drop(self, count: int) -> None:
        count = min(count, len(self.buffer))
        for _ in range(count):
            self.buffer.popleft()
        self.dropped.inc(count)
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
        try:
            self.writer.start()
        except OSError as exc:  # the first write tries again; the server starts regardless
            log.warning("prediction log writer not started yet: %s", _first_line(exc))
        self._task = asyncio.create_task(self._run(), name="prediction-log-writer")

    async def _flush_once(self, timeout: float = WRITE_TIMEOUT_SECONDS) -> bool:
        """Write one batch; False when the write failed (the batch stays buffered)."""
        batch = [self.buffer.popleft() for _ in range(min(self.batch_size, len(self.buffer)))]
        try:
            await asyncio.to_thread(self.writer.write, batch, timeout)
        except Exception as exc:
            self.buffer.extendleft(reversed(batch))
            overflow = len(self.buffer) - self.capacity
            if overflow > 0:
                self._drop(overflow)
            self.write_errors.inc()
            error = redact(
                str(exc) if isinstance(exc, PredictionLogWriteError) else _first_line(exc)
            )
            if self.last_error is None:
                log.warning(
                    "prediction log write failed, buffering: %s; fix: %s",
                    error,
                    FAILURES[classify(error)][1],
                )
            self.last_error = error
            return False
        self.written.inc(len(batch))
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
        deadline = time.monotonic() + self.shutdown_timeout
        self.writer.give_up_at = deadline  # a write in flight gives up then, its batch kept
        self._wake.set()
        if self._task is not None:
            await self._task
        while self.buffer and time.monotonic() < deadline:
            if not await self._flush_once(max(0.1, deadline - time.monotonic())):
                await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        if self.buffer:
            lost = len(self.buffer)
            self.buffer.clear()
            self.dropped.inc(lost)
            log.error("shutdown: %d prediction records not written (%s)", lost, self.last_error)
        await asyncio.to_thread(self.writer.stop)

    def check(self) -> str:
        if self.last_error is None:
            return "ok"
        fix = FAILURES[classify(self.last_error)][1]
        return f"failing: {self.last_error}; fix: {fix}; {len(self.buffer)} records buffered"


if __name__ == "__main__":
    _writer_main(int(sys.argv[1]))
