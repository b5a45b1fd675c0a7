"""`POST /predict` and `POST /predict/batch`: the body (declared by the request models) through
the validator into a column batch, scored by the scoring service, rendered in the shape of the
response models."""

import time
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.requests import Request

from ...inference.predictor import Predictor
from ...inference.validation import InvalidBatch, Validator
from ..requests import (
    batch_schema,
    documented_body,
    read_json,
    record_schema,
    request_error,
    request_id_from,
)
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


def _refused(kind: str, message: str, *loc: str | int) -> RequestValidationError:
    """FastAPI's own 422 for a body of the wrong shape, located under `body`."""
    return RequestValidationError(
        [{"type": kind, "loc": ("body", *loc), "msg": message, "input": None}]
    )


def an_object(body: Any, *loc: str | int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _refused("dict_type", "Input should be a valid dictionary", *loc)
    return body


def batch_records(body: Any, max_rows: int) -> list[dict[str, Any]]:
    """The records of a batch body: `{"records": [objects]}`, 1 to `max_rows` of them (the
    shape; their values are the validator's)."""
    body = an_object(body)
    records = body.get("records")
    extra = sorted(set(body) - {"records"})
    if "records" not in body:
        raise _refused("missing", "Field required", "records")
    if extra:
        raise _refused("extra_forbidden", "Extra inputs are not permitted", extra[0])
    if not isinstance(records, list):
        raise _refused("list_type", "Input should be a valid list", "records")
    if not 1 <= len(records) <= max_rows:
        message = f"List should have 1 to {max_rows} items (MAX_BATCH_SIZE), not {len(records)}"
        raise _refused("too_short" if not records else "too_long", message, "records")
    return [an_object(record, "records", i) for i, record in enumerate(records)]


def prediction_router(services: ScoringService, validator: Validator) -> APIRouter:
    """No model loaded: ModelNotReady, answered 503 by the app's handler."""
    router = APIRouter(tags=["predictions"])

    settings = services.settings
    one = documented_body(record_schema(settings.unknown_category))
    many = documented_body(batch_schema(settings.unknown_category, settings.max_batch_size))

    @router.post(
        "/predict", response_model=PredictionResponse, responses=NOT_READY, openapi_extra=one
    )
    async def predict(request: Request) -> Response:
        """Score one transaction."""
        started = time.perf_counter()
        record = an_object(await read_json(request))
        try:
            batch = validator.records([record])
        except InvalidBatch as exc:
            raise request_error(exc.problems, lambda _row, field: ("body", field)) from None
        request_id = request_id_from(request.headers.get("x-request-id"))
        model, result = await services.score(batch, request_id, started)
        return _answer(model, request_id, result.rows()[0])

    @router.post(
        "/predict/batch", response_model=BatchResponse, responses=NOT_READY, openapi_extra=many
    )
    async def predict_batch(request: Request) -> Response:
        """Score a list of transactions (at most MAX_BATCH_SIZE)."""
        started = time.perf_counter()
        records = batch_records(await read_json(request), settings.max_batch_size)
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
