"""The routes of the Open Inference Protocol: metadata and readiness, and `infer`, which decodes
the input tensors (`tensors.py`), scores them through the protocols' shared step
(`protocols/inputs.py`: the validator, the scoring service) and renders the result's tensors."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.requests import Request

from .... import __version__
from ....inference.predictor import Predictor
from ....inference.results import Result
from ....schema import FEATURES
from ...requests import is_json
from ..inputs import InvalidInput, ModelNotReady, ProtocolInput, UnscorableInput
from .tensors import BINARY_HEADER, ProtocolError, declared_datatype, request_columns
from .tensors import requested_outputs as outputs_of
from .types import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ServerMetadataResponse,
)

OUTPUTS = [tensor["name"] for tensor in Result.tensor_metadata()]


def _error(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code=status, media_type="application/json"
    )


def _ok(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=headers)


def _request_errors(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        if error.get("type") == "json_invalid":
            parts.append(f"body: not valid JSON ({error.get('ctx', {}).get('error', '')})")
            continue
        loc = ".".join(str(p) for p in error["loc"] if p != "body") or "body"
        parts.append(f"{loc}: {error['msg']}")
    return "; ".join(parts)


class ProtocolRoute(APIRoute):
    """FastAPI's route, with a body that is not an infer request answered as the protocol
    answers errors (400 `{"error": ...}`), not with the app's 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            if BINARY_HEADER in request.headers:
                return _error(400, "binary tensor data is not supported; send JSON data")
            if not is_json(request.headers.get("content-type")):
                # the protocol's clients do not all label their JSON: read it as JSON anyway
                scope = dict(request.scope)
                scope["headers"] = [
                    *(h for h in request.scope["headers"] if h[0] != b"content-type"),
                    (b"content-type", b"application/json"),
                ]
                request = Request(scope, request.receive)
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return _error(400, _request_errors(exc.errors()))

        return route


def open_inference_router(scorer: ProtocolInput) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"], route_class=ProtocolRoute)
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "Bad request"},
        404: {"model": ErrorResponse, "description": "Unknown model or version"},
        503: {"model": ErrorResponse, "description": "No model loaded yet"},
    }

    def served(name: str, version: str | None) -> Predictor:
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
            "outputs": Result.tensor_metadata(),
        }
        return _ok(body)

    def ready(name: str, version: str | None) -> Response:
        try:
            served(name, version)
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        return _ok({"name": name, "ready": True})

    async def infer(
        name: str, version: str | None, request: Request, payload: InferenceRequest
    ) -> Response:
        try:
            served(name, version)
            outputs = outputs_of(payload, OUTPUTS)
            columns, size = request_columns(payload)
            model, result = await scorer.columns(
                columns,
                size,
                lambda i, field: f"input '{field}' element {i}" if field else "inputs",
                payload.id,
                strict=True,
            )
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        except (InvalidInput, UnscorableInput) as exc:
            return _error(400, str(exc))
        except ModelNotReady as exc:
            return _error(503, f"model '{name}' not ready: {exc}")
        tensors = result.tensors()
        body = {
            "model_name": model.name,
            "model_version": model.version,
            "id": payload.id if payload.id is not None else "",
            "outputs": [tensors[o] for o in outputs],
        }
        return _ok(body, {"x-model-version": model.version})

    @router.post("/models/{name}/infer", response_model=InferenceResponse, responses=errors)
    async def model_infer(name: str, request: Request, payload: InferenceRequest) -> Response:
        """Score columnar named input tensors (one per feature; N rows = the tensor length)."""
        return await infer(name, None, request, payload)

    @router.post(
        "/models/{name}/versions/{version}/infer",
        response_model=InferenceResponse,
        responses=errors,
    )
    async def version_infer(
        name: str, version: str, request: Request, payload: InferenceRequest
    ) -> Response:
        """Infer on an explicit version (404 unless it is the one being served)."""
        return await infer(name, version, request, payload)

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
