"""The FastAPI app: `create_app()` builds it; `app` is the module-level instance served by
`uvicorn {{ cookiecutter.package_name }}.serving.app:app` and `{{ cookiecutter.package_name }} serve`.

The lifespan starts the model loader (retrying in the background until the registry has the
model: the process starts and stays live even when MLflow is down), the optional cache and
prediction log, and closes them on shutdown (flushing the prediction log).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.requests import Request

from ..drift.monitor import DriftCollector, DriftMonitor
from ..inference.validation import Validator
from ..settings import Settings, get_settings
from .http_metrics import RequestMetrics
from .metrics import LATENCY_BUCKETS, Metrics
from .model_manager import ModelManager
from .protocols.inputs import ProtocolInput
from .protocols.mlflow_scoring import mlflow_scoring_router
from .protocols.open_inference import open_inference_router
from .request_bodies import RequestBodies
from .routes import admin_router, operations_router, prediction_router
from .scoring import ModelNotReady, ScoringService, UnscorableInput

log = logging.getLogger(__name__)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming each field. Only JSON-safe parts of the errors are echoed (an input of NaN
    or a nested exception would otherwise turn the error response itself into a 500)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]],
            "msg": str(e["msg"]),
            "type": str(e["type"]),
        }
        for e in errors
    ]
    message = "; ".join(f"{_field_path(tuple(e['loc']))}: {e['msg']}" for e in detail)
    return JSONResponse({"detail": detail, "message": message}, status_code=422)


async def unscorable_input(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "message": str(exc)}, status_code=422)


async def model_not_ready(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"model not ready: {exc}"}, status_code=503)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    services = ScoringService(settings, metrics, ModelManager(settings, metrics))
    if settings.drift_window_size:
        # statistics at scrape time, off the request path (drift/monitor.py)
        services.drift = DriftMonitor(settings.drift_window_size)
        metrics.registry.register(DriftCollector(services.drift, services.serving_reference))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    # Swagger UI and ReDoc assets served by the app itself: /docs works without internet.
    app = FastAPIOffline(
        title=f"{settings.model_name} model server",
        description=f"Serves `models:/{settings.model_name}@{settings.model_alias}`.",
        version="1",
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UnscorableInput, unscorable_input)
    app.add_exception_handler(ModelNotReady, model_not_ready)
    # one validator for every entry (the schema's rules; UNKNOWN_CATEGORY decides unknowns)
    validator = Validator(settings.unknown_category)
    protocol_input = ProtocolInput(services, validator, settings.max_batch_size)
    routers = (
        prediction_router(services, validator),
        open_inference_router(protocol_input),
        mlflow_scoring_router(protocol_input),
        operations_router(services),
        admin_router(services),
    )
    for router in routers:
        app.include_router(router)
    # RequestBodies added first, so RequestMetrics wraps it: its 408/413/415/499 are counted.
    app.add_middleware(
        RequestBodies,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_body_timeout_seconds,
    )
    app.add_middleware(
        RequestMetrics,
        registry=metrics.registry,
        buckets=LATENCY_BUCKETS,
        # our routers' own routes (full paths): names a request answered before routing
        routes=[route for router in routers for route in router.routes],
        excluded=["/metrics"],
    )
    return app


app = create_app()
