"""`{{ cookiecutter.package_name }} score`: score a CSV or Parquet file of any size with the served model (the
version `MODEL_ALIAS` points to), the third way to get predictions next to `/predict` and the
protocols.

    make score INPUT=data/new.csv OUTPUT=predictions.parquet

The file is streamed in chunks (memory stays flat whatever its size). Every row is checked
by the server's validator (`inference/validation.py`: present, finite, in range, integer where
the feature is, a known category unless UNKNOWN_CATEGORY=unknown); a bad row goes to the
rejects file with its reason, none is dropped silently. Columns that are not features (an id)
are carried into the predictions. The model is loaded by the server's loader and runs through
the same onnxruntime session; each prediction row carries the model version. The run is logged
to MLflow (rows, rejects, version, the input's SHA-256) in the `<experiment>-scoring` experiment.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .inference.batch import ColumnBatch
from .inference.predictor import Predictor
from .inference.results import Result
from .inference.validation import Checked, Validator
from .schema import FEATURE_NAMES
from .settings import Settings, get_settings

FORMATS = (".csv", ".parquet")
ROW, VERSION, REASON = "row", "model_version", "reason"


class ScoringError(ValueError):
    """The file as a whole cannot be scored (missing feature columns, unknown format)."""


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    seconds: float = 0.0
    model_version: str = ""
    input_sha256: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ScoringError(f"{path}: expected a .csv or .parquet file, got {suffix or 'no suffix'}")
    return suffix


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_chunks(path: Path, chunk_rows: int) -> Iterator[Any]:
    """pyarrow RecordBatches of about `chunk_rows` rows; CSV columns all as text (each value is
    converted, and refused with a reason, by the validator)."""
    import pyarrow as pa

    if file_format(path) == ".parquet":
        import pyarrow.parquet as pq

        # pre_buffer (the default) keeps the buffers of every row group read so far: memory
        # would grow with the file (measured: +150 MB over 10M rows)
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=chunk_rows)
        return
    import pyarrow.csv as pacsv

    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ScoringError(f"{path}: empty CSV (a header row naming the columns is required)")
    # about chunk_rows rows per block (~16 bytes a value), at most 8 MB: the reader decodes a
    # few blocks ahead on its threads, and memory must not follow the file's size
    block = max(1 << 20, min(1 << 23, chunk_rows * len(header) * 16))
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False
        ),
    )
    yield from reader


class Reasons:
    """Why each row of a chunk is refused: the first problem found wins; code 0 = valid. A code
    per row and one message per problem keep it vectorised (no string per row)."""

    def __init__(self, checked: Checked) -> None:
        self.codes = (checked.reasons + 1).astype(np.uint16)
        self.messages = ["", *(f"{p.column}: {p.message}" for p in checked.problems)]

    def add(self, mask: np.ndarray, reason: str) -> None:
        fresh = mask & (self.codes == 0)
        if fresh.any():
            self.messages.append(reason)
            self.codes[fresh] = len(self.messages) - 1

    @property
    def valid(self) -> np.ndarray:
        return self.codes == 0

    def of(self, mask: np.ndarray) -> np.ndarray:
        """The messages of the rows in `mask`."""
        return np.asarray(self.messages, dtype=object)[self.codes[mask]]


def predict_chunk(model: Predictor, batch: ColumnBatch) -> Result:
    """The result of a chunk's valid rows: the served model on whole columns (onnxruntime
    releases the GIL, so chunks run on several threads at once)."""
    return model.predict(batch)


class TableWriter:
    """Appends pyarrow tables to a CSV or Parquet file (the format from the suffix)."""

    def __init__(self, path: Path, dictionary: tuple[str, ...] | None = None) -> None:
        self.path, self.format = path, file_format(path)
        # Parquet dictionary-encodes every column by default: on the unique ids and scores of a
        # prediction file that costs most of the write time, for nothing
        self.dictionary = True if dictionary is None else list(dictionary)
        self.writer: Any = None

    def write(self, table: Any) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.format == ".parquet":
                import pyarrow.parquet as pq

                self.writer = pq.ParquetWriter(
                    self.path, table.schema, use_dictionary=self.dictionary
                )
            else:
                import pyarrow.csv as pacsv

                self.writer = pacsv.CSVWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self, empty: Any) -> None:
        if self.writer is None:
            self.write(empty)  # a file with the header even when nothing went to it
        assert self.writer is not None
        self.writer.close()


@dataclass
class Chunk:
    """A chunk read and checked, its predictions on their way."""

    batch: Any
    rows: np.ndarray  # 1-based row numbers in the file
    reasons: Reasons
    scored: Future[Result] | None


class ChunkWriter:
    """Writes each chunk's predictions and rejects, in file order."""

    def __init__(self, output_path: Path, rejects_path: Path, version: str) -> None:
        import pyarrow as pa

        self.version = version
        self.outputs = TableWriter(output_path, dictionary=("label", VERSION))
        self.rejects = TableWriter(rejects_path)
        self.output_schema = pa.schema([(ROW, pa.int64())])
        self.reject_schema = pa.schema([(ROW, pa.int64()), (REASON, pa.string())])

    def write(self, chunk: Chunk, summary: Summary) -> None:
        import pyarrow as pa

        batch, reasons = chunk.batch, chunk.reasons
        valid = reasons.valid
        if chunk.scored is not None:
            result = chunk.scored.result()
            finite = result.finite()
            if not finite.all():  # never written as a prediction (as the server refuses it)
                unscorable = np.zeros_like(valid)
                unscorable[np.flatnonzero(valid)[~finite]] = True
                reasons.add(
                    unscorable, "the model gave a non-finite score (values far outside training)"
                )
                valid = reasons.valid
                result = result.take(finite)
            everything = bool(valid.all())
            kept = batch if everything else batch.filter(pa.array(valid))
            extra = [name for name in batch.schema.names if name not in FEATURE_NAMES]
            table = pa.table(
                {
                    **{name: kept.column(name) for name in extra},
                    ROW: chunk.rows if everything else chunk.rows[valid],
                    **result.table_columns(),
                    VERSION: pa.repeat(self.version, len(result)),
                }
            )
            self.output_schema = table.schema
            self.outputs.write(table)
            summary.scored += len(result)
        if not valid.all():
            refused = ~valid
            table = pa.table(
                {
                    ROW: chunk.rows[refused],
                    REASON: pa.array(reasons.of(refused).tolist(), pa.string()),
                    **{
                        name: batch.filter(pa.array(refused)).column(name)
                        for name in batch.schema.names
                    },
                }
            )
            self.reject_schema = table.schema
            self.rejects.write(table)
            summary.rejected += int(refused.sum())

    def close(self) -> None:
        self.outputs.close(self.output_schema.empty_table())
        self.rejects.close(self.reject_schema.empty_table())


def score_file(
    input_path: Path,
    output_path: Path,
    rejects_path: Path,
    settings: Settings,
    chunk_rows: int = 100_000,
    model: Any = None,
) -> Summary:
    """Score `input_path` into `output_path` (predictions) and `rejects_path` (refused rows).

    A pipeline over the file: while chunk k is written, up to one chunk per core is being
    scored (one onnxruntime thread each: calls on separate chunks scale better than one call
    on two threads) and the next is read and checked (pyarrow decodes ahead on its own
    threads). At most `cores + 1` chunks are held at once: memory does not follow the file.
    """
    from .inference.registry import load_registered_model

    for path in (input_path, output_path, rejects_path):
        file_format(path)
    if not input_path.exists():
        raise ScoringError(f"{input_path} not found")
    started = time.perf_counter()
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(cores) as scorers:
        digest = hasher.submit(sha256_of, input_path)  # hashlib releases the GIL
        model = model or load_registered_model(
            settings.model_copy(update={"serve_threads_per_worker": 1})
        )
        summary = Summary(model_version=model.version)
        validator = Validator(settings.unknown_category)
        writer = ChunkWriter(output_path, rejects_path, model.version)
        pending: deque[Chunk] = deque()
        for batch in read_chunks(input_path, chunk_rows):
            missing = [name for name in FEATURE_NAMES if name not in batch.schema.names]
            if missing:
                raise ScoringError(f"{input_path}: missing feature column(s) {', '.join(missing)}")
            n = batch.num_rows
            rows = np.arange(summary.rows + 1, summary.rows + n + 1, dtype=np.int64)
            checked = validator.arrow(batch)
            reasons = Reasons(checked)
            if checked.valid.any():
                scored = scorers.submit(predict_chunk, model, checked.valid_batch())
            else:
                scored = None
            pending.append(Chunk(batch, rows, reasons, scored))
            summary.rows += n
            while len(pending) > cores:
                writer.write(pending.popleft(), summary)
        while pending:
            writer.write(pending.popleft(), summary)
        writer.close()
        summary.input_sha256 = digest.result()
    summary.seconds = time.perf_counter() - started
    return summary


def log_run(summary: Summary, settings: Settings, args: argparse.Namespace) -> str:
    """An MLflow run in `<experiment>-scoring`; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(f"{settings.experiment_name}-scoring")
    with mlflow.start_run(run_name=f"score {Path(args.input).name}") as run:
        mlflow.set_tags(
            {
                "model_name": settings.model_name,
                "model_alias": settings.model_alias,
                "model_version": summary.model_version,
            }
        )
        mlflow.log_params(
            {
                "input": str(args.input),
                "input_sha256": summary.input_sha256,
                "output": str(args.output),
                "rejects": str(args.rejects),
                "model_uri": f"models:/{settings.model_name}/{summary.model_version}",
                "chunk_rows": args.chunk_rows,
            }
        )
        mlflow.log_metrics(
            {
                "rows": summary.rows,
                "scored": summary.scored,
                "rejected": summary.rejected,
                "seconds": summary.seconds,
                "rows_per_second": summary.rows_per_second,
            }
        )
        return str(run.info.run_id)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, required=True, help="CSV or Parquet file to score")
    parser.add_argument("--output", type=Path, required=True, help="predictions (.csv/.parquet)")
    parser.add_argument(
        "--rejects",
        type=Path,
        help="refused rows with the reason (default: <output>.rejects.<ext>)",
    )
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--no-log", action="store_true", help="do not log the run to MLflow")


def run(args: argparse.Namespace) -> int:
    if args.rejects is None:
        args.rejects = args.output.with_name(f"{args.output.stem}.rejects{args.output.suffix}")
    if args.chunk_rows < 1:
        print("score: --chunk-rows must be at least 1", file=sys.stderr)
        return 2
    settings = get_settings()
    from .inference.predictor import ModelLoadError

    try:
        summary = score_file(args.input, args.output, args.rejects, settings, args.chunk_rows)
    except ScoringError as exc:
        print(f"score: {exc}", file=sys.stderr)
        return 2
    except ModelLoadError as exc:  # nothing registered, MLflow unreachable: nothing written
        print(f"score: {exc}", file=sys.stderr)
        return 1
    print(
        f"scored {summary.scored:,} of {summary.rows:,} rows with models:/{settings.model_name}/"
        f"{summary.model_version} in {summary.seconds:.1f}s "
        f"({summary.rows_per_second:,.0f} rows/s); {summary.rejected:,} rejected -> {args.rejects}"
    )
    if not args.no_log:
        run_id = log_run(summary, settings, args)
        print(f"logged to MLflow run {run_id}")
    return 0
