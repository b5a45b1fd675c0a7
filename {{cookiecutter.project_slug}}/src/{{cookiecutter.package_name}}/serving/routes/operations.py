"""Operations routes: liveness, readiness, the loaded model, Prometheus metrics."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..responses import NOT_READY
from ..scoring import ScoringService


def operations_router(services: ScoringService) -> APIRouter:
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
        model = services.predictor()  # none loaded: 503 with the reason
        poll = services.models.poll_status
        return {
            **model.describe(),
            "last_reload": services.models.reload_status.as_dict(),
            "alias_poll": poll.as_dict() if poll else None,
        }

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
