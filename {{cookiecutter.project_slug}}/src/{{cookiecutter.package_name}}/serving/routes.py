"""HTTP routes. Thin: validation is the request models', the work is `Services`'."""

import secrets
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.requests import Request

from ..schema import CLASS_NAMES
from .service import ModelNotReady, Services

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"description": "No model loaded yet (the reason is in `detail`)"}
}


class Prediction(BaseModel):
    label: str = Field(description=f"Predicted class, one of {list(CLASS_NAMES)}")
    probabilities: dict[str, float] = Field(description="Probability of each class")


class PredictionResponse(Prediction):
    request_id: str
    model_name: str
    model_version: str
    cached: bool = False


class BatchResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    predictions: list[Prediction]


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    # 32 random hex digits like uuid4().hex, at a fifth of its cost
    return given if 0 < len(given) <= 64 and given.isprintable() else secrets.token_hex(16)


def _json(body: dict[str, Any], model_version: str, request_id: str) -> Response:
    # orjson: the body holds only str/float/bool/None (scores are checked finite upstream)
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={"x-model-version": model_version, "x-request-id": request_id},
    )


def _not_ready(exc: ModelNotReady) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"model not ready: {exc}")


def prediction_router(
    services: Services, record_model: type[BaseModel], batch_model: type[BaseModel]
) -> APIRouter:
    router = APIRouter(tags=["predictions"])

    @router.post("/predict", response_model=PredictionResponse, responses=NOT_READY)
    async def predict(record: record_model, request: Request) -> Response:  # type: ignore[valid-type]
        """Score one transaction."""
        started = time.perf_counter()
        request_id = _request_id(request)
        try:
            model, output, cached = await services.predict_one(
                record.model_dump(),  # type: ignore[attr-defined]
                request_id,
                started,
            )
        except ModelNotReady as exc:
            raise _not_ready(exc) from None
        body = {
            **output,
            "request_id": request_id,
            "model_name": model.name,
            "model_version": model.version,
            "cached": cached,
        }
        return _json(body, model.version, request_id)

    @router.post("/predict/batch", response_model=BatchResponse, responses=NOT_READY)
    async def predict_batch(batch: batch_model, request: Request) -> Response:  # type: ignore[valid-type]
        """Score a list of transactions (at most MAX_BATCH_SIZE)."""
        started = time.perf_counter()
        request_id = _request_id(request)
        records = [r.model_dump() for r in batch.records]  # type: ignore[attr-defined]
        try:
            model, outputs = services.predict_batch(records, request_id, started)
        except ModelNotReady as exc:
            raise _not_ready(exc) from None
        body = {
            "request_id": request_id,
            "model_name": model.name,
            "model_version": model.version,
            "predictions": outputs,
        }
        return _json(body, model.version, request_id)

    return router


def operations_router(services: Services) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/ready", responses=NOT_READY)
    async def ready() -> Response:
        """Readiness: a model is loaded. Configured dependencies are reported, not required:
        the server predicts without Redis and buffers the prediction log."""
        ok, body = await services.readiness()
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/model", responses=NOT_READY)
    async def model_info() -> dict[str, Any]:
        """The loaded model: name, version, alias, run id, loaded-at, signature."""
        model = services.models.current
        if model is None:
            raise HTTPException(503, detail=f"model not ready: {services.models.last_error}")
        return {**model.describe(), "last_reload": services.models.reload_status.as_dict()}

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def admin_router(services: Services) -> APIRouter:
    bearer = HTTPBearer(auto_error=False)

    def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="bearer token required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        expected = services.settings.admin_token
        if expected is None or not expected.get_secret_value():
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="ADMIN_TOKEN is not set")
        if not secrets.compare_digest(
            credentials.credentials.encode(), expected.get_secret_value().encode()
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid token")

    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.post(
        "/reload",
        status_code=202,
        responses={200: {"description": "Reloaded (wait=true)"}, 503: {"description": "Failed"}},
    )
    async def reload(
        wait: Annotated[bool, Query(description="Wait for the outcome")] = False,
    ) -> Response:
        """Load the version the alias points to now and swap it in; requests in flight finish
        on the old model; a failed reload keeps the old model (see GET /model: last_reload)."""
        task = services.models.reload_in_background()
        if not wait:
            return JSONResponse({"status": "reloading"}, status_code=202)
        outcome = await task
        code = 200 if outcome.state == "ok" else 503
        return JSONResponse(outcome.as_dict(), status_code=code)

    return router
