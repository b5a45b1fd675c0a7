"""The Open Inference Protocol's own OpenAPI document (specs/open_inference_rest.yaml, vendored
from kserve/open-inference-protocol) as the judge: every path it defines answers with the body
its schema describes, the unversioned forms the protocol allows answer the same way, our test
requests are requests of the protocol, and errors have its error shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from openapi_schema_validator import OAS30Validator

from .test_mlflow_protocol import sample_records
from .test_open_inference import tensors

SPEC = yaml.safe_load((Path(__file__).parent / "specs" / "open_inference_rest.yaml").read_text())


def validate(body: Any, schema: dict[str, Any]) -> None:
    """`schema` as written in the document (usually a $ref into its components)."""
    OAS30Validator({**schema, "components": SPEC["components"]}).validate(body)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def operations() -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in SPEC["paths"].items()
        for method in ("get", "post")
        if method in item
    ]


def concrete(path: str, name: str, version: str) -> str:
    return path.replace("${MODEL_NAME}", name).replace("${MODEL_VERSION}", version)


def response_schema(path: str, method: str, status: int) -> dict[str, Any] | None:
    answer = SPEC["paths"][path][method]["responses"].get(str(status))
    assert answer is not None, f"{method.upper()} {path}: the protocol defines no {status}"
    return answer.get("content", {}).get("application/json", {}).get("schema")


@pytest.fixture(scope="module")
def served(app_client: TestClient, registered_model: Any) -> tuple[str, str]:
    return str(registered_model.name), str(app_client.get("/model").json()["version"])


def infer_body() -> dict[str, Any]:
    return {"id": "spec-1", "inputs": tensors(sample_records(4))}


def test_the_document_defines_what_we_serve() -> None:
    assert len(operations()) == 6, operations()


@pytest.mark.parametrize(("path", "method"), operations())
def test_every_path_answers_its_documented_schema(
    app_client: TestClient, served: tuple[str, str], path: str, method: str
) -> None:
    url = concrete(path, *served)
    if method == "post":
        request = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]
        validate(infer_body(), request["schema"])
        response = app_client.post(url, json=infer_body())
    else:
        response = app_client.get(url)
    assert response.status_code == 200, response.text
    schema = response_schema(path, method, 200)
    if schema is not None:
        validate(response.json(), schema)


@pytest.mark.parametrize(
    ("suffix", "schema"),
    [("", "metadata_model_response"), ("/infer", "inference_response")],
)
def test_unversioned_model_paths_answer_the_same_schemas(
    app_client: TestClient, served: tuple[str, str], suffix: str, schema: str
) -> None:
    name, version = served
    url = f"/v2/models/{name}{suffix}"
    response = app_client.post(url, json=infer_body()) if suffix else app_client.get(url)
    assert response.status_code == 200, response.text
    validate(response.json(), component(schema))
    if suffix:
        assert response.json()["model_version"] == version


def test_a_bad_inference_request_answers_the_documented_error(
    app_client: TestClient, served: tuple[str, str]
) -> None:
    path = "/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer"
    bad = {"inputs": tensors(sample_records(2), amount={"datatype": "BOOL"})}
    response = app_client.post(concrete(path, *served), json=bad)
    assert response.status_code == 400, response.text
    validate(response.json(), response_schema(path, "post", 400) or {})
    assert "amount" in response.json()["error"]


@pytest.mark.parametrize("what", ["name", "version"])
def test_an_unknown_model_answers_the_metadata_error(
    app_client: TestClient, served: tuple[str, str], what: str
) -> None:
    name, version = served
    name, version = ("no-such-model", version) if what == "name" else (name, "999999")
    response = app_client.get(f"/v2/models/{name}/versions/{version}")
    assert response.status_code == 404, response.text
    validate(response.json(), component("metadata_model_error_response"))
