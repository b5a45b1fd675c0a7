"""The Open Inference Protocol v2 over REST (KServe V2; Triton, MLServer and Seldon clients):
health, server and model metadata, and `infer` under `/v2/`, with the model name =
`MODEL_NAME` and the version = the registry version being served.

The model takes one input tensor per feature of `schema.FEATURES` (shape `[-1]`: one element per
row; INT64 for integer features, FP32 for the other numerics, BYTES for categoricals) and gives
`label` (BYTES, the class name) and `probabilities` (FP32, `[-1, n_classes]`). Tensors travel as
JSON (`data`); the binary tensor extension is refused with 400. Errors are `{"error": "..."}`:
400 for a bad request, 404 for an unknown model or version, 503 while no model is loaded.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.requests import Request

from ... import __version__
from ...schema import CLASS_NAMES, FEATURES, FEATURES_BY_NAME
from ..requests import inline_schema
from .rows import InvalidRows, ModelNotReady, RowScorer, UnscorableInput, request_id_from

INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})
DATATYPES = INT_TYPES | FLOAT_TYPES | {"BOOL", "BYTES", "BF16"}
OUTPUTS = ("label", "probabilities")
BINARY_HEADER = "inference-header-content-length"


def declared_datatype(name: str) -> str:
    feature = FEATURES_BY_NAME[name]
    if feature.kind == "categorical":
        return "BYTES"
    return "INT64" if feature.dtype == "int" else "FP32"


def _accepted(name: str) -> frozenset[str]:
    declared = declared_datatype(name)
    return (
        INT_TYPES
        if declared == "INT64"
        else FLOAT_TYPES
        if declared == "FP32"
        else frozenset({"BYTES"})
    )


ACCEPTED = {feature.name: _accepted(feature.name) for feature in FEATURES}


# --- the protocol's JSON objects (the REST document's schemas) ---------------------------------
Parameters = dict[str, Any]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    shape: list[int] = Field(description="[N] (or [N, 1]): N rows")
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    parameters: Parameters | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class ErrorResponse(BaseModel):
    error: str


_REQUEST = TypeAdapter(InferenceRequest)


class ProtocolError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code=status, media_type="application/json"
    )


def _ok(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _request_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


def _elements(tensor: RequestInput) -> list[Any]:
    """The tensor's data as one element per row (shape [N] or [N, 1], flat or nested)."""
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise ProtocolError(
            400, f"input '{tensor.name}': shape {shape} is not [N] or [N, 1] (one value per row)"
        )
    data = tensor.data
    if data and type(data[0]) is list:
        if {type(v) for v in data} != {list} or {len(v) for v in data} != {1}:
            raise ProtocolError(
                400, f"input '{tensor.name}': nested data must hold one value per row"
            )
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise ProtocolError(
            400,
            f"input '{tensor.name}': shape {shape} holds {shape[0]} elements, data has {len(data)}",
        )
    return data


# JSON kinds of each datatype family (bool is its own type: never a number here)
ELEMENT_TYPES: dict[str, tuple[frozenset[type], str]] = {
    "BYTES": (frozenset({str}), "a string"),
    "INT": (frozenset({int}), "an integer"),
    "FP": (frozenset({int, float}), "a number"),
}


def _check_elements(name: str, datatype: str, values: list[Any]) -> None:
    """Each element is of the datatype's JSON kind (the request model checks values)."""
    family = "BYTES" if datatype == "BYTES" else "INT" if datatype in INT_TYPES else "FP"
    allowed, kind = ELEMENT_TYPES[family]
    if {type(v) for v in values} <= allowed:
        return
    i, value = next((i, v) for i, v in enumerate(values) if type(v) not in allowed)
    raise ProtocolError(
        400, f"input '{name}' element {i}: {datatype} tensor holds {value!r}, not {kind}"
    )


def request_columns(request: InferenceRequest, max_rows: int) -> dict[str, list[Any]]:
    """One list of values per named input tensor, all of one length (ProtocolError otherwise)."""
    columns: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        if tensor.name in columns:
            raise ProtocolError(400, f"input '{tensor.name}' given twice")
        if tensor.name not in ACCEPTED:
            raise ProtocolError(400, f"input '{tensor.name}': not an input of the model")
        if tensor.parameters and "binary_data_size" in tensor.parameters:
            raise ProtocolError(
                400, f"input '{tensor.name}': binary tensor data is not supported; send JSON data"
            )
        if tensor.datatype not in DATATYPES:
            raise ProtocolError(400, f"input '{tensor.name}': unknown datatype {tensor.datatype!r}")
        if tensor.datatype not in ACCEPTED[tensor.name]:
            raise ProtocolError(
                400,
                f"input '{tensor.name}': datatype {tensor.datatype} does not match the model's "
                f"{declared_datatype(tensor.name)}",
            )
        values = _elements(tensor)
        _check_elements(tensor.name, tensor.datatype, values)
        columns[tensor.name] = values
    missing = [f.name for f in FEATURES if f.name not in columns]
    if missing:
        raise ProtocolError(400, f"missing input(s): {', '.join(missing)}")
    sizes = {len(values) for values in columns.values()}
    if len(sizes) > 1:
        counts = ", ".join(f"{name}={len(values)}" for name, values in columns.items())
        raise ProtocolError(400, f"inputs hold different numbers of rows: {counts}")
    rows = sizes.pop()
    if rows == 0:
        raise ProtocolError(400, "inputs hold no rows")
    if rows > max_rows:
        raise ProtocolError(400, f"{rows} rows, at most {max_rows} per request (MAX_BATCH_SIZE)")
    return columns


def columns_to_rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _requested_outputs(request: InferenceRequest) -> list[str]:
    if not request.outputs:
        return list(OUTPUTS)
    names = [output.name for output in request.outputs]
    unknown = [name for name in names if name not in OUTPUTS]
    if unknown:
        raise ProtocolError(400, f"unknown output(s) {unknown}; the model gives {list(OUTPUTS)}")
    return names


def open_inference_router(scorer: RowScorer) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"])
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "Bad request"},
        404: {"model": ErrorResponse, "description": "Unknown model or version"},
        503: {"model": ErrorResponse, "description": "No model loaded yet"},
    }

    def served(name: str, version: str | None) -> Any:
        if name != scorer.model_name:
            raise ProtocolError(
                404, f"unknown model '{name}'; this server serves '{scorer.model_name}'"
            )
        try:
            model = scorer.current()
        except ModelNotReady as exc:
            raise ProtocolError(503, f"model '{name}' not ready: {exc}") from None
        if version is not None and version != model.version:
            raise ProtocolError(
                404, f"model '{name}' version '{version}' is not served (serving {model.version})"
            )
        return model

    def metadata(name: str, version: str | None) -> Response:
        try:
            model = served(name, version)
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        body = {
            "name": model.name,
            "versions": [model.version],
            "platform": "onnx_onnxv1" if model.flavor == "onnx" else "mlflow_pyfunc",
            "inputs": [
                {"name": f.name, "datatype": declared_datatype(f.name), "shape": [-1]}
                for f in FEATURES
            ],
            "outputs": [
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(CLASS_NAMES)]},
            ],
        }
        return _ok(body)

    def ready(name: str, version: str | None) -> Response:
        try:
            served(name, version)
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        return _ok({"name": name, "ready": True})

    async def infer(name: str, version: str | None, request: Request) -> Response:
        try:
            if BINARY_HEADER in request.headers:
                raise ProtocolError(400, "binary tensor data is not supported; send JSON data")
            served(name, version)
            try:
                payload = orjson.loads(await request.body())
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(400, f"body: not valid JSON ({exc})") from None
            try:
                parsed = _REQUEST.validate_python(payload)
            except ValidationError as exc:
                raise ProtocolError(400, _request_errors(exc)) from None
            outputs = _requested_outputs(parsed)
            columns = request_columns(parsed, scorer.max_rows)
            scored = await scorer.score_columns(
                columns,
                lambda: columns_to_rows(columns),
                lambda i, field: f"input '{field}' element {i}",
                request_id_from(parsed.id),
            )
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        except (InvalidRows, UnscorableInput) as exc:
            return _error(400, str(exc))
        except ModelNotReady as exc:
            return _error(503, f"model '{name}' not ready: {exc}")
        n = len(scored.labels)
        tensors = {
            "label": {"name": "label", "datatype": "BYTES", "shape": [n], "data": scored.labels},
            "probabilities": {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [n, len(CLASS_NAMES)],
                "data": [p for row in scored.probabilities for p in row],
            },
        }
        body = {
            "model_name": scored.model_name,
            "model_version": scored.model_version,
            "id": parsed.id if parsed.id is not None else "",
            "outputs": [tensors[o] for o in outputs],
        }
        return _ok(body, {"x-model-version": scored.model_version})

    # The scoring routes first: FastAPI and the metrics middleware each try the routes in
    # order on every request.
    infer_doc = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(InferenceRequest)}},
        }
    }

    @router.post(
        "/models/{name}/infer",
        response_model=InferenceResponse,
        responses=errors,
        openapi_extra=infer_doc,
    )
    async def model_infer(name: str, request: Request) -> Response:
        """Score columnar named input tensors (one per feature; N rows = the tensor length)."""
        return await infer(name, None, request)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        response_model=InferenceResponse,
        responses=errors,
        openapi_extra=infer_doc,
    )
    async def version_infer(name: str, version: str, request: Request) -> Response:
        """Infer on an explicit version (404 unless it is the one being served)."""
        return await infer(name, version, request)

    @router.get("", response_model=ServerMetadataResponse)
    async def server_metadata() -> Response:
        """Server metadata."""
        return _ok({"name": scorer.model_name, "version": __version__, "extensions": []})

    @router.get("/health/live")
    async def server_live() -> Response:
        """Liveness: the process answers."""
        return _ok({"live": True})

    @router.get("/health/ready", responses=errors)
    async def server_ready() -> Response:
        """Readiness: the model is loaded."""
        try:
            scorer.current()
        except ModelNotReady:
            return Response(
                orjson.dumps({"ready": False}), status_code=503, media_type="application/json"
            )
        return _ok({"ready": True})

    @router.get("/models/{name}", response_model=ModelMetadataResponse, responses=errors)
    async def model_metadata(name: str) -> Response:
        """Model metadata: one input tensor per feature, the outputs."""
        return metadata(name, None)

    @router.get("/models/{name}/ready", responses=errors)
    async def model_ready(name: str) -> Response:
        """Model readiness."""
        return ready(name, None)

    @router.get(
        "/models/{name}/versions/{version}", response_model=ModelMetadataResponse, responses=errors
    )
    async def version_metadata(name: str, version: str) -> Response:
        """Metadata of the version being served (404 for any other)."""
        return metadata(name, version)

    @router.get("/models/{name}/versions/{version}/ready", responses=errors)
    async def version_ready(name: str, version: str) -> Response:
        """Readiness of the version being served."""
        return ready(name, version)

    return router
