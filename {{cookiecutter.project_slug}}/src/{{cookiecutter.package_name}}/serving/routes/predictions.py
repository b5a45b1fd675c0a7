"""`POST /predict` and `POST /predict/batch`: the body (declared by the request models) through
the validator into a column batch, scored by the scoring service, rendered in the shape of the
response models."""

import time
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.requests import Request

from ...inference.predictor import Predictor
from ...inference.validation import InvalidBatch, Validator
from ..requests import request_error, request_id_from
from ..responses import NOT_READY, BatchResponse, PredictionResponse
from ..scoring import ScoringService


def _answer(model: Predictor, request_id: str, body: dict[str, Any]) -> Response:
    """The body with the request's and the model's identity, in body and headers."""
    identity = {"request_id": request_id, "model_name": model.name, "model_version": model.version}
    # orjson: the body holds only str/float/None (scores are checked finite upstream)
    return Response(
        orjson.dumps(identity | body),
        media_type="application/json",
        headers={"x-model-version": model.version, "x-request-id": request_id},
    )


def prediction_router(
    services: ScoringService,
    validator: Validator,
    record_model: type[BaseModel],
    batch_model: type[BaseModel],
) -> APIRouter:
    """No model loaded: ModelNotReady, answered 503 by the app's handler."""
    router = APIRouter(tags=["predictions"])

    @router.post("/predict", response_model=PredictionResponse, responses=NOT_READY)
    async def predict(request: Request, record: record_model) -> Response:  # type: ignore[valid-type]
        """Score one transaction."""
        started = time.perf_counter()
        try:
            batch = validator.records([record.model_dump()])  # type: ignore[attr-defined]
        except InvalidBatch as exc:
            raise request_error(exc.problems, lambda _row, field: ("body", field)) from None
        request_id = request_id_from(request.headers.get("x-request-id"))
        model, result = await services.score(batch, request_id, started)
        return _answer(model, request_id, result.rows()[0])

    @router.post("/predict/batch", response_model=BatchResponse, responses=NOT_READY)
    async def predict_batch(request: Request, body: batch_model) -> Response:  # type: ignore[valid-type]
        """Score a list of transactions (at most MAX_BATCH_SIZE)."""
        started = time.perf_counter()
        records = [r.model_dump() for r in body.records]  # type: ignore[attr-defined]
        try:
            batch = validator.records(records)
        except InvalidBatch as exc:
            raise request_error(
                exc.problems, lambda row, field: ("body", "records", row or 0, field)
            ) from None
        request_id = request_id_from(request.headers.get("x-request-id"))
        model, result = await services.score(batch, request_id, started)
        return _answer(model, request_id, {"predictions": result.rows()})

    return router
