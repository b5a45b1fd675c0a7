"""Credentials never reach an answer or a log line: MLflow down, its URL carrying the serving
password (which settings accept), every route that reports the load error answers without it,
and the server's logging configuration (serving/serve.py) redacts every record."""

from __future__ import annotations

import io
import logging
import logging.config
import socket
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.redaction import RedactingFilter, redact
from {{ cookiecutter.package_name }}.serving.app import create_app
from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.serving.serve import log_config
from {{ cookiecutter.package_name }}.settings import Settings

PASSWORD = "Zq8vN3kW1pL6tR9yB2xC5mH7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"API request to http://serving:{PASSWORD}@mlflow:5000/api/2.0/x failed",
            "API request to http://serving:***@mlflow:5000/api/2.0/x failed",
        ),
        (f"redis://:{PASSWORD}@redis:6379/0", "redis://:***@redis:6379/0"),
        (f"http://u:{PASSWORD}@extra@host/x", "http://u:***@host/x"),
        (
            f"GET https://b.example/k?X-Amz-Credential=AK&X-Amz-Signature={PASSWORD}&n=1",
            "GET https://b.example/k?X-Amz-Credential=***&X-Amz-Signature=***&n=1",
        ),
        (f"/x?token={PASSWORD}&access_token=a&sig=b", "/x?token=***&access_token=***&sig=***"),
        (
            f"headers=[('Authorization', 'Bearer {PASSWORD}')]",
            "headers=[('Authorization', 'Bearer ***')]",
        ),
        ("http://mlflow:5000/api?name=m&version=3", "http://mlflow:5000/api?name=m&version=3"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_answers_hide_the_password_of_an_unreachable_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://serving:{PASSWORD}@127.0.0.1:{_closed_port()}"
    settings = Settings(
        _env_file=None,
        project_root=tmp_path,
        mlflow_tracking_uri=uri,
        model_name="m",
        redis_url=None,
        admin_token="test-admin-token",
        prediction_logging=False,
        model_retry_initial_seconds=0.1,
        model_retry_max_seconds=0.5,
    )
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while "127.0.0.1" not in client.get("/ready").text:  # the load error, not "not loaded yet"
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.2)
        answers = {
            "/ready": client.get("/ready"),
            "/model": client.get("/model"),
            "/predict": client.post("/predict", json=example_record()),
            "/admin/reload": client.post(
                "/admin/reload?wait=true", headers={"Authorization": "Bearer test-admin-token"}
            ),
        }
    for route, answer in answers.items():
        assert answer.status_code >= 400 or route == "/admin/reload", (route, answer.text)
        assert PASSWORD not in answer.text, route
    assert "serving:***@127.0.0.1" in answers["/ready"].text
    # What the app logged (through pytest's handler: no filter) is redacted at the source too.
    assert caplog.records and PASSWORD not in caplog.text


def test_the_server_log_configuration_redacts_every_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = log_config()
    for handler in config["handlers"].values():
        assert handler["filters"] == ["redact"]
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    config["handlers"]["access"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        url = f"http://serving:{PASSWORD}@mlflow:5000"
        logging.getLogger("{{ cookiecutter.package_name }}.anything").warning("cannot reach %s", url)
        try:
            raise ConnectionError(f"API request to {url}/api failed")
        except ConnectionError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/ready?token={PASSWORD}", "1.1", 200
        )
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    text = stream.getvalue()
    assert PASSWORD not in text
    assert text.count("***") == 3 and "ConnectionError" in text and "GET /ready" in text


def test_the_filter_keeps_unrelated_records_unchanged() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s of %d", ("one", 2), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "one of 2"
