"""Request counts and a latency histogram per route, as a plain ASGI middleware: the metrics
and labels the dashboards and alert rules read (the names prometheus-fastapi-instrumentator's
`requests` and `latency` gave them, which this replaces), nothing more.

The route is the one the router matched, read from the ASGI scope after the app answered
(Starlette records it as `scope["route"]`): no route is matched a second time per request
(the instrumentator matches every route again, about a tenth of a single-row request's CPU).
The `handler` label is the route's template, so paths that carry a client's words (the model
name of OIP requests) add no labels; a path no route matched is `none`. A request answered
before routing (a body refused by `RequestBodies`: 408/413/415/499) is matched against the
routes here, with the router's public `matches`, so it counts under its route too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestMetrics:
    def __init__(
        self,
        app: ASGIApp,
        registry: CollectorRegistry,
        buckets: Iterable[float],
        routes: Sequence[BaseRoute],
        excluded: Iterable[str] = ("/metrics",),
    ) -> None:
        self.app = app
        self.routes = routes
        self.excluded = frozenset(excluded)
        self.requests = Counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler.",
            ["handler", "method"],
            buckets=tuple(buckets),
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # the app raised before it answered

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route") or self._match(scope)
            handler = getattr(route, "path", None) or "none"
            if handler not in self.excluded:
                method = scope["method"]
                self.requests.labels(method, str(status), handler).inc()
                self.latency.labels(handler, method).observe(time.perf_counter() - started)

    def _match(self, scope: Scope) -> BaseRoute | None:
        for route in self.routes:
            if route.matches(scope)[0] == Match.FULL:
                return route
        return None
