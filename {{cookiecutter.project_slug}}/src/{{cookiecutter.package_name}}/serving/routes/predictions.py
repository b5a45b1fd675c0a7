"""`POST /predict` and `POST /predict/batch`: validate (the request models), hand the records
to the scoring service, answer in the shape of the response models."""

import secrets
import time
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.requests import Request

from ..predictor import Predictor
from ..requests import JsonBody
from ..responses import NOT_READY, BatchResponse, PredictionResponse
from ..scoring import ScoringService


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    # 32 random hex digits like uuid4().hex, at a fifth of its cost
    return given if 0 < len(given) <= 64 and given.isprintable() else secrets.token_hex(16)


def _answer(model: Predictor, request_id: str, body: dict[str, Any]) -> Response:
    """The body with the request's and the model's identity, in body and headers."""
    identity = {"request_id": request_id, "model_name": model.name, "model_version": model.version}
    # orjson: the body holds only str/float/bool/None (scores are checked finite upstream)
    return Response(
        orjson.dumps(identity | body),
        media_type="application/json",
        headers={"x-model-version": model.version, "x-request-id": request_id},
    )


def prediction_router(
    services: ScoringService, record_model: type[BaseModel], batch_model: type[BaseModel]
) -> APIRouter:
    """The routes of the request models built from `schema.FEATURES` (see `requests.py`).
    No model loaded: ModelNotReady, answered 503 by the app's handler."""
    router = APIRouter(tags=["predictions"])
    one, many = JsonBody(record_model), JsonBody(batch_model)

    @router.post(
        "/predict",
        response_model=PredictionResponse,
        responses=NOT_READY,
        openapi_extra=one.openapi,
    )
    async def predict(request: Request) -> Response:
        """Score one transaction."""
        started = time.perf_counter()
        record = one(await request.body(), request.headers.get("content-type"))
        request_id = _request_id(request)
        model, output, cached = await services.predict_one(record.model_dump(), request_id, started)
        return _answer(model, request_id, {**output, "cached": cached})

    @router.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses=NOT_READY,
        openapi_extra=many.openapi,
    )
    async def predict_batch(request: Request) -> Response:
        """Score a list of transactions (at most MAX_BATCH_SIZE)."""
        started = time.perf_counter()
        batch = many(await request.body(), request.headers.get("content-type"))
        request_id = _request_id(request)
        records = [r.model_dump() for r in batch.records]  # type: ignore[attr-defined]
        model, outputs = await services.predict_batch(records, request_id, started)
        return _answer(model, request_id, {"predictions": outputs})

    return router
