"""MLflow's scoring protocol: `POST /invocations`, `GET /ping`, `GET /version`, answered as
`mlflow models serve` answers them for the same registered version, so its clients (curl
scripts, `mlflow.pyfunc.scoring_server.client.ScoringServerClient`, `mlflow.deployments`) switch
by changing the URL.

Bodies: `application/json` with exactly one of `dataframe_split`, `dataframe_records`,
`instances`, `inputs` (and an optional `params`), or `text/csv` with a header row; UTF-8 only.
Success: `{"predictions": {"label": [<class index>], "probabilities": [[...]]}}`, the columnar
layout MLflow's ONNX flavor returns. Unlike `mlflow models serve`, every row is validated (the
same rules as `/predict`): unknown columns, NaN/inf and out-of-range values are refused with
400 `{"error_code": "BAD_REQUEST", "message": ...}` naming the field; named-column `instances`
and `inputs`, which MLflow refuses for this model, are scored.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.requests import Request

from .inputs import InvalidInput, ModelNotReady, ProtocolInput, UnscorableInput, Where

DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS = (
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
)
FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PARAMS = "params"
JSON, CSV = "application/json", "text/csv"
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    + "{"
    + ", ".join(repr(f) for f in FORMATS)
    + "}"
)
SPLIT_KEYS = frozenset({"columns", "data", "index"})


class MediaTypeError(ValueError):
    """415: a body that is neither UTF-8 JSON nor UTF-8 CSV."""


def mlflow_version() -> str:
    from mlflow.version import VERSION  # mlflow-skinny: what `mlflow models serve` reports

    return str(VERSION)


def _error(status: int, message: str, code: str = "BAD_REQUEST") -> Response:
    return Response(
        orjson.dumps({"error_code": code, "message": message}),
        status_code=status,
        media_type="application/json",
    )


def media_type(header: str | None) -> str:
    """`application/json` or `text/csv` from a Content-Type header (MediaTypeError otherwise)."""
    if not header:
        raise MediaTypeError(f"Content-Type is required: {JSON} or {CSV}")
    mime, *parameters = (part.strip() for part in header.split(";"))
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key != "charset":
            raise MediaTypeError(f"unrecognized Content-Type parameter {key!r}")
        if value != "utf-8":
            raise MediaTypeError(f"the scoring server only supports UTF-8 (got charset={value})")
    mime = mime.lower()
    if mime not in (JSON, CSV):
        raise MediaTypeError(f"Content-Type must be {JSON} or {CSV} (got {header!r})")
    return mime


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {dict: "dictionary", list: "list"}
    return kinds.get(type(value), type(value).__name__)


# (the body's columns and row count when it is columnar, else its rows; where a value is)
Body = tuple[dict[str, list[Any]] | None, list[Any] | None, int, Where]


def _rows_from_split(split: Any) -> Body:
    if not isinstance(split, dict):
        raise InvalidInput(
            f"{DF_SPLIT}: Dataframe split format must be a dictionary. Got {_kind(split)}."
        )
    extra = sorted(set(split) - SPLIT_KEYS)
    if extra or "data" not in split:
        raise InvalidInput(
            f"{DF_SPLIT}: Dataframe split format must have 'data' field and optionally 'columns' "
            f"and 'index' fields; got {sorted(split)}"
        )
    columns, data, index = split.get("columns"), split["data"], split.get("index")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(
            f"{DF_SPLIT}.columns: a list of feature names is required (positional columns "
            "cannot be matched to the model's features)"
        )
    if len(set(columns)) != len(columns):
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        raise InvalidInput(f"{DF_SPLIT}.columns: duplicated column(s) {duplicated}")
    if not isinstance(data, list):
        raise InvalidInput(f"{DF_SPLIT}.data: a list of rows is required, got {_kind(data)}")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        size = len(index) if isinstance(index, list) else _kind(index)
        raise InvalidInput(
            f"{DF_SPLIT}.index: Provided dataframe_split field is not a valid dataframe "
            f"representation: index has {size} entries for {len(data)} rows"
        )
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise InvalidInput(
                f"{DF_SPLIT}.data[{i}]: Provided dataframe_split field is not a valid dataframe "
                f"representation: {got} for {width} columns"
            )
    # columnar once transposed (in C)
    transposed = zip(*data, strict=True) if data else ([] for _ in columns)
    by_column = dict(zip(columns, map(list, transposed), strict=True))
    return (
        by_column,
        None,
        len(data),
        lambda i, field: f"{DF_SPLIT}.data[{i}]" + (f".{field}" if field else ""),
    )


def _rows_from_list(key: str, value: Any, what: str) -> Body:
    if not isinstance(value, list):
        raise InvalidInput(f"{key}: {what} Got {_kind(value)}.")
    for i, row in enumerate(value):
        if not isinstance(row, dict):
            raise InvalidInput(
                f"{key}[{i}]: each row must be an object of named features, got {_kind(row)} "
                "(positional rows cannot be matched to the model's features)"
            )
    return None, value, len(value), lambda i, field: f"{key}[{i}]" + (f".{field}" if field else "")


def _rows_from_columns(key: str, value: dict[str, Any]) -> Body:
    lengths = {}
    for name, column in value.items():
        if not isinstance(column, list):
            raise InvalidInput(f"{key}.{name}: a list of values is required, got {_kind(column)}")
        lengths[name] = len(column)
    if len(set(lengths.values())) > 1:
        raise InvalidInput(f"{key}: columns of different lengths {lengths}")
    size = next(iter(lengths.values()), 0)
    return (
        value,
        None,
        size,
        lambda i, field: f"{key}.{field}[{i}]" if field else f"{key}[{i}]",
    )


def rows_from_json(body: bytes) -> Body:
    try:
        payload = orjson.loads(body)  # refuses NaN/Infinity literals, invalid UTF-8
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"body: Failed to parse input from JSON. Ensure that input is a valid JSON "
            f"formatted string. Error: {exc}"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"body: {REQUIRED_INPUT_FORMAT}. Received {_kind(payload)}.")
    formats = [key for key in payload if key in FORMATS]
    if len(formats) != 1:
        raise InvalidInput(
            f"body: {REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(payload)}"
        )
    unknown = [key for key in payload if key not in FORMATS and key != PARAMS]
    if unknown:
        raise InvalidInput(f"body: unknown field(s) {unknown} next to {formats[0]!r}")
    params = payload.get(PARAMS)
    if params is not None:
        if not isinstance(params, dict):
            raise InvalidInput(f"{PARAMS}: Params must be a dictionary, got {_kind(params)}")
        if params:
            raise InvalidInput(
                f"{PARAMS}.{next(iter(params))}: this model takes no parameters "
                f"(got {sorted(params)})"
            )
    key = formats[0]
    value = payload[key]
    if key == DF_SPLIT:
        return _rows_from_split(value)
    if key == DF_RECORDS:
        return _rows_from_list(key, value, "Dataframe records format must be a list of records.")
    if key == INPUTS and isinstance(value, dict):
        return _rows_from_columns(key, value)
    return _rows_from_list(
        key,
        value,
        "a list of named-feature rows (or, for inputs, an object of columns) is required.",
    )


def rows_from_csv(body: bytes) -> Body:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"body: Ensure that input is a valid UTF-8 encoded string. Error: {exc}"
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InvalidInput("body: empty CSV; a header row naming the features is required")
    if "" in header:
        raise InvalidInput(
            "body: CSV header has an unnamed column (a pandas index? write it with index=False)"
        )
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values:
            continue  # a trailing blank line
        if len(values) != len(header):
            raise InvalidInput(f"csv line {line}: {len(values)} values for {len(header)} columns")
        rows.append(values)
    if len(set(header)) != len(header):
        duplicated = sorted({c for c in header if header.count(c) > 1})
        raise InvalidInput(f"body: CSV header names column(s) twice: {duplicated}")
    transposed = zip(*rows, strict=True) if rows else ([] for _ in header)
    columns = dict(zip(header, map(list, transposed), strict=True))
    where = lambda i, field: f"csv row {i + 1}" + (f" column {field}" if field else "")  # noqa: E731
    return columns, None, len(rows), where


def mlflow_scoring_router(scorer: ProtocolInput) -> APIRouter:
    router = APIRouter(tags=["MLflow scoring protocol"])

    @router.post(
        "/invocations",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {"type": "object"},
                        "examples": {
                            "dataframe_split": {"value": {DF_SPLIT: {"columns": [], "data": []}}}
                        },
                    },
                    CSV: {"schema": {"type": "string"}},
                },
            }
        },
        responses={
            400: {"description": "Invalid input (`message` names the field)"},
            415: {"description": "Not UTF-8 JSON or CSV"},
            503: {"description": "No model loaded yet"},
        },
    )
    async def invocations(request: Request) -> Response:
        """Score a DataFrame the way `mlflow models serve` does (`dataframe_split`,
        `dataframe_records`, `instances`, `inputs` or CSV)."""
        try:
            kind = media_type(request.headers.get("content-type"))
        except MediaTypeError as exc:
            return _error(415, str(exc))
        body = await request.body()
        try:
            columns, rows, size, where = (
                rows_from_csv(body) if kind == CSV else rows_from_json(body)
            )
            request_id = request.headers.get("x-request-id")
            if rows is not None:
                model, result = await scorer.records(rows, where, request_id)
            else:
                assert columns is not None
                model, result = await scorer.columns(columns, size, where, request_id)
        except InvalidInput as exc:
            return _error(400, str(exc))
        except UnscorableInput as exc:
            return _error(400, str(exc))
        except ModelNotReady as exc:
            return _error(503, f"model not ready: {exc}", "TEMPORARILY_UNAVAILABLE")
        return Response(
            orjson.dumps({"predictions": result.columns()}),
            media_type="application/json",
            headers={"x-model-version": model.version},
        )

    @router.get("/ping", responses={503: {"description": "No model loaded yet"}})
    async def ping() -> Response:
        """MLflow's health check: 200 once a model is loaded."""
        try:
            scorer.current()
        except ModelNotReady as exc:
            return _error(503, f"model not ready: {exc}", "TEMPORARILY_UNAVAILABLE")
        return Response("\n", media_type="application/json")

    @router.get("/version")
    async def version() -> Response:
        """The MLflow version, as `mlflow models serve` reports it."""
        return Response(mlflow_version(), media_type="application/json")

    return router
