"""Admin routes (bearer token ADMIN_TOKEN): reload the model."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..scoring import ScoringService


def admin_router(services: ScoringService) -> APIRouter:
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
