"""The request metrics' `handler` label: the route's template, resolved once per path by the
app's instrumentator middleware (`app.RouteNamesRemembered`), in a bounded table."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.serving.app import RouteNamesRemembered


def remembered(client: TestClient) -> RouteNamesRemembered:
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, RouteNamesRemembered):
        layer = layer.app
    return layer


def test_handlers_are_templates_and_the_table_is_bounded(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RouteNamesRemembered, "MAX_PATHS", 3)
    for i in range(6):  # unknown model names: one path each
        assert client.get(f"/v2/models/other{i}").status_code == 404
    assert client.get("/v2/models/other0").status_code == 404  # a remembered path
    text = client.get("/metrics").text
    line = 'http_requests_total{handler="/v2/models/{name}",method="GET",status="404"} 7.0'
    assert line in text
    assert len(remembered(client)._handlers) == 3
