"""`{{ cookiecutter.package_name }} score`: score a CSV or Parquet file of any size with the served model (the
version `MODEL_ALIAS` points to), the third way to get predictions next to `/predict` and the
protocols.

    make score INPUT=data/new.csv OUTPUT=predictions.parquet

The file is streamed in chunks (memory stays flat whatever its size). Every row is checked
against `schema.FEATURES` with the server's rules (present, finite, in range, integer where
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

from .schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from .serving.requests import MAX_CATEGORY_LENGTH, UNKNOWN_CATEGORY
from .settings import Settings, get_settings

FORMATS = (".csv", ".parquet")
ROW, LABEL, VERSION, REASON = "row", "label", "model_version", "reason"
PROBABILITY = {name: f"probability_{name}" for name in CLASS_NAMES}


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
    converted, and refused with a reason, by `check_chunk`)."""
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


def _numbers(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values, True where the value is not a number) for one pyarrow column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(column, pa.float64())
        array = values.to_numpy(zero_copy_only=False)
        return array.astype(np.float64, copy=False), np.asarray(values.is_null())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # some value is not a number: convert one by one (only chunks with bad values get here)
    array = np.full(len(column), np.nan)
    bad = np.zeros(len(column), dtype=bool)
    for i, value in enumerate(column.to_pylist()):
        try:
            if isinstance(value, bool):
                raise TypeError
            array[i] = float(value)
        except (TypeError, ValueError):
            bad[i] = True
    return array, bad


class Reasons:
    """Why each row of a chunk is refused: the first problem found wins; code 0 = valid. A code
    per row and one message per problem keep the checks vectorised (no string per row)."""

    def __init__(self, rows: int) -> None:
        self.codes = np.zeros(rows, dtype=np.uint16)
        self.messages = [""]

    def add(self, mask: np.ndarray, reason: str) -> None:
        if not mask.any():
            return
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


def _categories(column: Any, feature: Any, unknown_category: str, reasons: Reasons) -> np.ndarray:
    """The column as the object array of str onnxruntime takes, unknown categories mapped.
    Checked per distinct value (a handful), not per row: the column is dictionary-encoded and
    the array built by indexing the few distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = feature.name
    if pa.types.is_dictionary(column.type) or not (
        pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        column = pc.cast(column, pa.string())
    if column.null_count:
        reasons.add(np.asarray(column.is_null()), f"{name}: missing value")
        column = column.fill_null("")
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary.to_pylist()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    known = np.array([value in feature.categories for value in distinct], dtype=bool)
    if unknown_category == "reject":
        reasons.add(~known[indices], f"{name}: not one of {', '.join(feature.categories)}")
        mapped = distinct
    else:
        too_long = np.array([len(v) > MAX_CATEGORY_LENGTH for v in distinct], dtype=bool)
        reasons.add(too_long[indices], f"{name}: longer than {MAX_CATEGORY_LENGTH} characters")
        mapped = [v if ok else UNKNOWN_CATEGORY for v, ok in zip(distinct, known, strict=True)]
    values: np.ndarray = np.asarray(mapped, dtype=object)[indices]
    return values


def check_chunk(batch: Any, unknown_category: str) -> tuple[dict[str, np.ndarray], Reasons]:
    """(feature columns as numpy, why each row is refused), with the server's rules."""
    reasons = Reasons(batch.num_rows)
    columns: dict[str, np.ndarray] = {}
    for feature in FEATURES:
        column = batch.column(feature.name)
        name = feature.name
        if feature.kind == "categorical":
            columns[name] = _categories(column, feature, unknown_category, reasons)
            continue
        values, not_number = _numbers(column)
        reasons.add(not_number, f"{name}: missing or not a number")
        with np.errstate(invalid="ignore"):
            reasons.add(~np.isfinite(values), f"{name}: not a finite number")
            if feature.minimum is not None:
                reasons.add(values < feature.minimum, f"{name}: below {feature.minimum:g}")
            if feature.maximum is not None:
                reasons.add(values > feature.maximum, f"{name}: above {feature.maximum:g}")
            if feature.dtype == "int":
                reasons.add(values != np.floor(values), f"{name}: not an integer")
        columns[name] = values
    return columns, reasons


def predict_chunk(model: Any, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(label indices, float64 probabilities) of valid rows: the served model on whole columns
    (onnxruntime releases the GIL, so chunks run on several threads at once)."""
    labels, probabilities = model.predict_columns(columns)
    return np.asarray(labels), np.asarray(probabilities, dtype=np.float64)


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
    scored: Future[tuple[np.ndarray, np.ndarray]] | None


class ChunkWriter:
    """Writes each chunk's predictions and rejects, in file order."""

    def __init__(self, output_path: Path, rejects_path: Path, version: str) -> None:
        import pyarrow as pa

        self.version = version
        self.outputs = TableWriter(output_path, dictionary=(LABEL, VERSION))
        self.rejects = TableWriter(rejects_path)
        self.class_names = pa.array(CLASS_NAMES)
        self.output_schema = pa.schema([(ROW, pa.int64()), (LABEL, pa.string())])
        self.reject_schema = pa.schema([(ROW, pa.int64()), (REASON, pa.string())])

    def write(self, chunk: Chunk, summary: Summary) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        batch, reasons = chunk.batch, chunk.reasons
        valid = reasons.valid
        if chunk.scored is not None:
            labels, probabilities = chunk.scored.result()
            finite = np.isfinite(probabilities).all(axis=1)
            if not finite.all():  # never written as a prediction (as the server refuses it)
                unscorable = np.zeros_like(valid)
                unscorable[np.flatnonzero(valid)[~finite]] = True
                reasons.add(
                    unscorable, "the model gave a non-finite score (values far outside training)"
                )
                valid = reasons.valid
                labels, probabilities = labels[finite], probabilities[finite]
            everything = bool(valid.all())
            kept = batch if everything else batch.filter(pa.array(valid))
            extra = [name for name in batch.schema.names if name not in FEATURE_NAMES]
            table = pa.table(
                {
                    **{name: kept.column(name) for name in extra},
                    ROW: chunk.rows if everything else chunk.rows[valid],
                    LABEL: pc.take(self.class_names, pa.array(labels.astype(np.int64))),
                    **{
                        PROBABILITY[c]: np.ascontiguousarray(probabilities[:, i])
                        for i, c in enumerate(CLASS_NAMES)
                    },
                    VERSION: pa.repeat(self.version, len(labels)),
                }
            )
            self.output_schema = table.schema
            self.outputs.write(table)
            summary.scored += len(labels)
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
    from .serving.registry import load_registered_model

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
        writer = ChunkWriter(output_path, rejects_path, model.version)
        pending: deque[Chunk] = deque()
        for batch in read_chunks(input_path, chunk_rows):
            missing = [name for name in FEATURE_NAMES if name not in batch.schema.names]
            if missing:
                raise ScoringError(f"{input_path}: missing feature column(s) {', '.join(missing)}")
            n = batch.num_rows
            rows = np.arange(summary.rows + 1, summary.rows + n + 1, dtype=np.int64)
            columns, reasons = check_chunk(batch, settings.unknown_category)
            valid = reasons.valid
            if valid.all():
                scored = scorers.submit(predict_chunk, model, columns)
            elif valid.any():
                scored = scorers.submit(
                    predict_chunk, model, {k: v[valid] for k, v in columns.items()}
                )
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
    from .serving.predictor import ModelLoadError

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
