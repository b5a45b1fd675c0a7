"""The HTTP API against a real model from the registry (TestClient runs the lifespan)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from {{ cookiecutter.package_name }}.serving.responses import BatchResponse, PredictionResponse
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import AUTH, Store, make_settings, running, wait_until

CATEGORICAL = next(f for f in FEATURES if f.kind == "categorical")
NUMERIC = next(f for f in FEATURES if f.kind == "numeric" and f.dtype == "float")
BOUNDED = next(f for f in FEATURES if f.maximum is not None)


def test_health_and_ready(client: TestClient, registered_model: Any) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == str(registered_model.version)


def test_predict_one(client: TestClient, record: dict[str, Any], registered_model: Any) -> None:
    response = client.post("/predict", json=record, headers={"X-Request-ID": "abc-1"})
    assert response.status_code == 200
    body = response.json()
    assert body["label"] in CLASS_NAMES
    assert set(body["probabilities"]) == set(CLASS_NAMES)
    assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert body["model_version"] == str(registered_model.version)
    assert response.headers["x-model-version"] == str(registered_model.version)
    assert body["request_id"] == response.headers["x-request-id"] == "abc-1"


def test_batch_matches_single(client: TestClient, record: dict[str, Any]) -> None:
    other = {**record, NUMERIC.name: 9_999.0}
    batch = client.post("/predict/batch", json={"records": [record, other, record]})
    assert batch.status_code == 200
    predictions = batch.json()["predictions"]
    assert len(predictions) == 3
    single = client.post("/predict", json=other).json()
    assert predictions[1]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)
    assert predictions[0] == predictions[2]


def _follows(model: type[BaseModel], body: dict[str, Any]) -> None:
    """The body has exactly the documented fields, each of its documented type."""
    model.model_validate(body, strict=True)
    assert set(body) == set(model.model_fields)


def test_responses_follow_their_documented_models(
    client: TestClient, record: dict[str, Any]
) -> None:
    """The routes write their bodies directly (orjson); the OpenAPI contract is these models."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, model in (("/predict", PredictionResponse), ("/predict/batch", BatchResponse)):
        documented = paths[path]["post"]["responses"]["200"]["content"]["application/json"]
        assert documented["schema"]["$ref"].endswith(f"/{model.__name__}")
    _follows(PredictionResponse, client.post("/predict", json=record).json())
    batch = client.post("/predict/batch", json={"records": [record, record]}).json()
    _follows(BatchResponse, batch)
    for prediction in batch["predictions"]:
        assert set(prediction) == {"label", "probabilities"}


def test_model_info(client: TestClient, registered_model: Any) -> None:
    info = client.get("/model").json()
    assert info["name"] == registered_model.name
    assert info["version"] == str(registered_model.version)
    assert info["alias"] == "champion"
    assert info["run_id"] and info["loaded_at"] and info["flavor"] == "onnx"
    assert {i["name"] for i in info["signature"]["inputs"]} == set(FEATURE_NAMES)


def test_native_version_is_served_when_it_has_no_onnx_flavor(
    client: TestClient, store: Store, record: dict[str, Any], tmp_path: Any
) -> None:
    """The opt-in fallback of a failed ONNX export: the native pyfunc, same answers, slower."""
    onnx_answer = client.post("/predict", json=record).json()
    version = store.add_native_version()
    store.set_champion(version)
    settings = make_settings(
        store.tracking_uri,
        store.name,
        tmp_path,
        unknown_category="unknown",
        trust_registry_code_execution=True,
    )
    with running(settings) as native:
        assert native.get("/model").json()["flavor"] == "native"
        body = native.post("/predict", json=record).json()
        assert body["model_version"] == version
        assert body["label"] == onnx_answer["label"]
        assert body["probabilities"] == pytest.approx(onnx_answer["probabilities"], abs=1e-4)
        unknown = {**record, CATEGORICAL.name: "never-seen"}
        batch = native.post("/predict/batch", json={"records": [record, unknown]})
        assert batch.status_code == 200
        assert batch.json()["predictions"][0]["label"] == onnx_answer["label"]


def test_native_version_without_its_framework_is_not_ready_with_the_reason(
    store: Store, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serve image has no training framework: a native-only version cannot load there."""
    import mlflow.pyfunc

    def no_framework(*_args: Any, **_kwargs: Any) -> None:
        raise ModuleNotFoundError("No module named 'pandas'")

    store.set_champion(store.add_native_version())
    monkeypatch.setattr(mlflow.pyfunc, "load_model", no_framework)
    settings = make_settings(
        store.tracking_uri, store.name, tmp_path, trust_registry_code_execution=True
    )
    with running(settings, ready=False) as client:
        wait_until(lambda: client.get("/ready").status_code == 503, 30, "a failed load")
        wait_until(lambda: "native" in client.get("/ready").json()["reason"], 30, "the reason")
        reason = client.get("/ready").json()["reason"]
        assert "ONNX export failed" in reason and "No module named 'pandas'" in reason
        assert client.get("/health").status_code == 200


def test_native_version_is_refused_unless_registry_code_is_trusted(
    store: Store, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default only ONNX is served: a pyfunc is a pickle, never unpickled without opt-in."""
    import mlflow.pyfunc

    def unpickled(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the server unpickled a model without TRUST_REGISTRY_CODE_EXECUTION")

    store.set_champion(store.add_native_version())
    monkeypatch.setattr(mlflow.pyfunc, "load_model", unpickled)
    settings = make_settings(store.tracking_uri, store.name, tmp_path)
    assert settings.trust_registry_code_execution is False
    with running(settings, ready=False) as client:
        wait_until(lambda: "ONNX" in (client.get("/ready").json().get("reason") or ""), 30, "why")
        reason = client.get("/ready").json()["reason"]
        assert "TRUST_REGISTRY_CODE_EXECUTION" in reason and "runs code" in reason, reason
        assert client.get("/ready").status_code == 503


def predict_body_schema(client: TestClient) -> dict[str, Any]:
    """The request body `/predict` documents in the OpenAPI document (what /docs shows)."""
    document = client.get("/openapi.json").json()
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    if "$ref" in schema:  # FastAPI documents a body model as a component
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return dict(schema)


def test_openapi_documents_every_feature(client: TestClient) -> None:
    schema = predict_body_schema(client)
    assert set(schema["properties"]) == set(FEATURE_NAMES)
    assert set(schema["required"]) == set(FEATURE_NAMES)
    assert schema["properties"][CATEGORICAL.name]["enum"] == list(CATEGORICAL.categories)


def test_metrics(client: TestClient, record: dict[str, Any], registered_model: Any) -> None:
    client.post("/predict", json=record)
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/predict",method="POST",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "predictions_total{label=" in text
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}
    loaded = samples["model_loaded_version"]
    assert loaded.labels == {"name": registered_model.name, "alias": "champion", "worker": ANY}
    assert loaded.value == float(registered_model.version)


def _bad(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes}


BAD_RECORDS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "wrong type": (lambda r: _bad(r, **{NUMERIC.name: "lots"}), NUMERIC.name),
    "missing field": (lambda r: {k: v for k, v in r.items() if k != NUMERIC.name}, NUMERIC.name),
    "unknown category": (lambda r: _bad(r, **{CATEGORICAL.name: "casino"}), CATEGORICAL.name),
    "out of bounds": (lambda r: _bad(r, **{BOUNDED.name: BOUNDED.maximum + 1}), BOUNDED.name),
    "extra field": (lambda r: _bad(r, surprise=1), "surprise"),
    "null": (lambda r: _bad(r, **{NUMERIC.name: None}), NUMERIC.name),
    "not an object": (lambda r: [r], "body"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_bad_record_is_422_naming_the_field(
    client: TestClient, record: dict[str, Any], case: str
) -> None:
    make, field = BAD_RECORDS[case]
    response = client.post("/predict", json=make(record))
    assert response.status_code == 422, response.text
    assert field in response.json()["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected(
    client: TestClient, record: dict[str, Any], literal: str
) -> None:
    text = json.dumps(record).replace(
        f'"{NUMERIC.name}": {json.dumps(record[NUMERIC.name])}', f'"{NUMERIC.name}": {literal}'
    )
    response = client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert NUMERIC.name in response.json()["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_422_naming_the_content_type(
    client: TestClient, record: dict[str, Any], content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict", content=json.dumps(record), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("body: Content-Type must be application/json")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_json_media_types_with_parameters_or_a_suffix_are_accepted(
    client: TestClient, record: dict[str, Any], content_type: str
) -> None:
    response = client.post(
        "/predict", content=json.dumps(record), headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[]", b"null"])
def test_malformed_bodies_are_4xx(client: TestClient, body: bytes) -> None:
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("body: ")


def test_batch_bounds(settings_for: Callable[..., Settings], record: dict[str, Any]) -> None:
    with running(settings_for(max_batch_size=5, max_body_bytes=4096)) as client:
        empty = client.post("/predict/batch", json={"records": []})
        assert empty.status_code == 422 and "records" in empty.json()["message"]
        large = client.post("/predict/batch", json={"records": [record] * 6})
        assert large.status_code == 422 and "records" in large.json()["message"]
        bad_row = client.post("/predict/batch", json={"records": [record, {**record, "hour": -1}]})
        assert bad_row.status_code == 422 and "records.1.hour" in bad_row.json()["message"]
        huge = client.post("/predict", content=b"{" + b" " * 5000 + b"}")
        assert huge.status_code == 413

        def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post("/predict", content=chunks())
        assert streamed.status_code == 413


def test_unknown_category_bucket(
    settings_for: Callable[..., Settings], record: dict[str, Any]
) -> None:
    with running(settings_for(unknown_category="unknown")) as client:
        response = client.post("/predict", json={**record, CATEGORICAL.name: "casino"})
        assert response.status_code == 200, response.text
        schema = predict_body_schema(client)
        assert schema["properties"][CATEGORICAL.name]["type"] == "string"


def test_admin_requires_token(client: TestClient) -> None:
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


def test_admin_refuses_all_without_configured_token(
    settings_for: Callable[..., Settings],
) -> None:
    with running(settings_for(admin_token=None)) as client:
        assert client.post("/admin/reload", headers=AUTH).status_code == 403
