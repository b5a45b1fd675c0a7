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
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request

from ..drift.monitor import DriftCollector, DriftMonitor
from ..settings import Settings, get_settings
from .metrics import LATENCY_BUCKETS, Metrics
from .model_manager import ModelManager
from .protocols.mlflow_scoring import mlflow_scoring_router
from .protocols.open_inference import open_inference_router
from .protocols.rows import RowScorer
from .request_bodies import RequestBodies
from .requests import build_request_models
from .routes import admin_router, operations_router, prediction_router
from .scoring import ModelNotReady, ScoringService, UnscorableInput

log = logging.getLogger(__name__)


class RouteNamesRemembered(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware, resolving each path's route name once: it tries every
    route in turn on each request (about a tenth of a single-row request's CPU, measured), the
    later a route is declared, the more. At most `MAX_PATHS` paths are remembered (paths
    carry the model name of OIP requests: a client cannot grow the table without bound)."""

    MAX_PATHS = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handlers: dict[tuple[str, str], tuple[str, bool]] = {}

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        key = (request.scope["method"], request.scope["path"])
        handler = self._handlers.get(key)
        if handler is None:
            handler = super()._get_handler(request)
            if len(self._handlers) < self.MAX_PATHS:
                self._handlers[key] = handler
        return handler


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
    record_model, batch_model = build_request_models(
        settings.unknown_category, settings.max_batch_size
    )

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
    documentation = list(app.router.routes)  # /openapi.json, /docs, /redoc and their assets
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(UnscorableInput, unscorable_input)
    app.add_exception_handler(ModelNotReady, model_not_ready)
    # The routes are tried in order on every request, each non-matching one costing about
    # 1.5 µs: the scoring routes go first, the operations routes (probes, scrapes: a few
    # requests a minute) after them, the documentation routes, which the app declares
    # first, last.
    scorer = RowScorer(services, record_model, settings.max_batch_size)
    app.include_router(prediction_router(services, record_model, batch_model))
    app.include_router(open_inference_router(scorer))
    app.include_router(mlflow_scoring_router(scorer))
    app.include_router(operations_router(services))
    app.include_router(admin_router(services))
    app.router.routes[:] = [r for r in app.router.routes if r not in documentation]
    app.router.routes.extend(documentation)
    # Added before the instrumentator, so inside it: its 408/413/415/499 answers are counted.
    app.add_middleware(
        RequestBodies,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_body_timeout_seconds,
    )
    # Request counts and a latency histogram per route, nothing more: the instrumentator's
    # default set (request/response size summaries, a second histogram) costs about 8% of the
    # single-row throughput (measured with benchmarks/bench_serving.py).
    Instrumentator(
        should_group_status_codes=False, excluded_handlers=["/metrics"], registry=metrics.registry
    ).add(
        http_metrics.requests(registry=metrics.registry),
        http_metrics.latency(
            buckets=LATENCY_BUCKETS, should_include_status=False, registry=metrics.registry
        ),
    ).instrument(app)
    for middleware in app.user_middleware:  # built on the first request, not before
        if middleware.cls is PrometheusInstrumentatorMiddleware:
            middleware.cls = RouteNamesRemembered
    return app


app = create_app()
