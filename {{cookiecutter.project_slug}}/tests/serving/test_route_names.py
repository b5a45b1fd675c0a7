"""The request metrics' `handler` label is the route's template: paths that carry a client's
words (the model name of OIP requests) never become labels of their own."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_handlers_are_templates(client: TestClient) -> None:
    for i in range(6):  # unknown model names: one path each
        assert client.get(f"/v2/models/other{i}").status_code == 404
    assert client.get("/v2/models/other0").status_code == 404
    text = client.get("/metrics").text
    line = 'http_requests_total{handler="/v2/models/{name}",method="GET",status="404"} 7.0'
    assert line in text
    assert "other3" not in text
