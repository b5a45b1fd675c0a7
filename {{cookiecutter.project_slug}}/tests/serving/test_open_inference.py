"""The Open Inference Protocol v2 (REST): a real client (`tritonclient[http]`) against the
served model, then every malformed request the protocol allows one to send (datatype
mismatches, shapes, missing/unknown/duplicated inputs, unknown model, wrong version, binary
data): each is a 4xx with the protocol's `{"error": ...}` body, never a 5xx."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.schema import CLASS_NAMES, FEATURES
from {{ cookiecutter.package_name }}.serving.protocols.open_inference import declared_datatype

from .conftest import make_settings, running
from .test_mlflow_protocol import sample_records

NUMPY = {"INT64": np.int64, "FP32": np.float32, "BYTES": np.object_}
EXPECTED_DATATYPES = {
    f.name: "BYTES" if f.kind == "categorical" else "INT64" if f.dtype == "int" else "FP32"
    for f in FEATURES
}


def tensors(records: list[dict[str, Any]], **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON input tensor per feature; `overrides` replaces fields of a named tensor."""
    out = []
    for feature in FEATURES:
        tensor = {
            "name": feature.name,
            "shape": [len(records)],
            "datatype": declared_datatype(feature.name),
            "data": [r[feature.name] for r in records],
        }
        tensor.update(overrides.get(feature.name, {}))
        out.append(tensor)
    return out


@pytest.fixture(scope="module")
def model_name(registered_model: Any) -> str:
    return str(registered_model.name)


def test_metadata_lists_one_tensor_per_feature(app_client: TestClient, model_name: str) -> None:
    version = app_client.get("/model").json()["version"]
    for path in (f"/v2/models/{model_name}", f"/v2/models/{model_name}/versions/{version}"):
        body = app_client.get(path).json()
        assert body["name"] == model_name and body["versions"] == [version]
        assert body["platform"] == "onnx_onnxv1"
        assert [(i["name"], i["datatype"], i["shape"]) for i in body["inputs"]] == [
            (name, datatype, [-1]) for name, datatype in EXPECTED_DATATYPES.items()
        ]
        assert body["outputs"] == [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(CLASS_NAMES)]},
        ]
    assert app_client.get("/v2").json()["extensions"] == []
    assert app_client.get("/v2/health/live").json() == {"live": True}
    assert app_client.get("/v2/health/ready").json() == {"ready": True}
    assert app_client.get(f"/v2/models/{model_name}/ready").json() == {
        "name": model_name,
        "ready": True,
    }


def test_infer_matches_predict_batch(app_client: TestClient, model_name: str) -> None:
    records = sample_records(10)
    response = app_client.post(
        f"/v2/models/{model_name}/infer", json={"id": "req-1", "inputs": tensors(records)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    version = app_client.get("/model").json()["version"]
    assert (body["model_name"], body["model_version"], body["id"]) == (model_name, version, "req-1")
    label, probabilities = body["outputs"]
    batch = app_client.post("/predict/batch", json={"records": records}).json()["predictions"]
    assert label == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [10],
        "data": [p["label"] for p in batch],
    }
    assert probabilities["shape"] == [10, len(CLASS_NAMES)]
    expected = [p["probabilities"][c] for p in batch for c in CLASS_NAMES]
    assert probabilities["data"] == pytest.approx(expected, abs=1e-6)
    # nested [N, 1] data, another accepted datatype, one requested output, a versioned path
    nested = tensors(
        records,
        amount={"shape": [10, 1], "datatype": "FP64", "data": [[r["amount"]] for r in records]},
        hour={"datatype": "INT32"},
    )
    response = app_client.post(
        f"/v2/models/{model_name}/versions/{version}/infer",
        json={"inputs": nested, "outputs": [{"name": "label"}]},
    )
    assert response.status_code == 200, response.text
    assert [o["name"] for o in response.json()["outputs"]] == ["label"]
    assert response.json()["outputs"][0]["data"] == label["data"]
    assert response.json()["id"] == ""


RECORDS = sample_records(3)
BAD: list[tuple[str, Any, str]] = [
    ("malformed JSON", b"{not json", "not valid JSON"),
    ("no inputs", {}, "inputs: Field required"),
    ("inputs not a list", {"inputs": {"amount": [1]}}, "inputs: Input should be a valid list"),
    ("unknown request field", {"inputs": tensors(RECORDS), "extra": 1}, "extra: Extra inputs"),
    (
        "tensor without shape",
        {"inputs": [{"name": "amount", "datatype": "FP32", "data": [1.0]}]},
        "inputs.0.shape: Field required",
    ),
    ("missing input", {"inputs": tensors(RECORDS)[1:]}, "missing input(s): amount"),
    (
        "unknown input",
        {
            "inputs": [
                *tensors(RECORDS),
                {"name": "colour", "shape": [3], "datatype": "BYTES", "data": ["r", "g", "b"]},
            ]
        },
        "input 'colour': not an input of the model",
    ),
    (
        "duplicated input",
        {"inputs": [*tensors(RECORDS), tensors(RECORDS)[0]]},
        "input 'amount' given twice",
    ),
    (
        "FP32 for an INT64 input",
        {"inputs": tensors(RECORDS, hour={"datatype": "FP32"})},
        "input 'hour': datatype FP32 does not match the model's INT64",
    ),
    (
        "INT64 for an FP32 input",
        {"inputs": tensors(RECORDS, amount={"datatype": "INT64", "data": [1, 2, 3]})},
        "input 'amount': datatype INT64 does not match the model's FP32",
    ),
    (
        "BYTES for a numeric input",
        {"inputs": tensors(RECORDS, amount={"datatype": "BYTES", "data": ["1", "2", "3"]})},
        "datatype BYTES does not match",
    ),
    (
        "FP32 for a BYTES input",
        {"inputs": tensors(RECORDS, channel={"datatype": "FP32", "data": [1.0, 2.0, 3.0]})},
        "input 'channel': datatype FP32 does not match the model's BYTES",
    ),
    (
        "BOOL for an INT64 input",
        {
            "inputs": tensors(
                RECORDS, foreign_transaction={"datatype": "BOOL", "data": [True, False, True]}
            )
        },
        "datatype BOOL does not match",
    ),
    (
        "unknown datatype",
        {"inputs": tensors(RECORDS, amount={"datatype": "FLOAT"})},
        "input 'amount': unknown datatype 'FLOAT'",
    ),
    (
        "string in an FP32 tensor",
        {"inputs": tensors(RECORDS, amount={"data": [1.0, "2", 3.0]})},
        "input 'amount' element 1: Input should be a valid number (got '2')",
    ),
    (
        "fraction in an INT64 tensor",
        {"inputs": tensors(RECORDS, hour={"data": [1, 2.5, 3]})},
        "input 'hour' element 1: Input should be a valid integer (got 2.5)",
    ),
    (
        "bool in an INT64 tensor",
        {"inputs": tensors(RECORDS, hour={"data": [1, True, 3]})},
        "input 'hour' element 1",
    ),
    (
        "null in an FP32 tensor",
        {"inputs": tensors(RECORDS, amount={"data": [1.0, None, 3.0]})},
        "input 'amount' element 1",
    ),
    (
        "number in a BYTES tensor",
        {"inputs": tensors(RECORDS, channel={"data": ["chip", 7, "chip"]})},
        "input 'channel' element 1: Input should be a valid string (got 7)",
    ),
    (
        "shape [N, 2]",
        {"inputs": tensors(RECORDS, amount={"shape": [3, 2]})},
        "input 'amount': shape [3, 2] is not [N] or [N, 1]",
    ),
    ("shape []", {"inputs": tensors(RECORDS, amount={"shape": []})}, "shape [] is not"),
    ("shape [-1]", {"inputs": tensors(RECORDS, amount={"shape": [-1]})}, "shape [-1] is not"),
    (
        "shape of rank 3",
        {"inputs": tensors(RECORDS, amount={"shape": [3, 1, 1]})},
        "shape [3, 1, 1] is not",
    ),
    (
        "shape and data disagree",
        {"inputs": tensors(RECORDS, amount={"shape": [2]})},
        "input 'amount': shape [2] holds 2 elements, data has 3",
    ),
    (
        "nested rows of two",
        {"inputs": tensors(RECORDS, amount={"shape": [3, 1], "data": [[1.0, 2.0]] * 3})},
        "nested data must hold one value per row",
    ),
    (
        "inputs of different lengths",
        {"inputs": tensors(RECORDS, amount={"shape": [2], "data": [1.0, 2.0]})},
        "inputs hold different numbers of rows",
    ),
    ("zero rows", {"inputs": tensors([])}, "inputs hold no rows"),
    ("too many rows", {"inputs": tensors(sample_records(101))}, "at most 100 per request"),
    (
        "out of range",
        {"inputs": tensors(RECORDS, amount={"data": [1.0, -5.0, 3.0]})},
        "input 'amount' element 1: Input should be greater than or equal to 0",
    ),
    (
        "integer out of range",
        {"inputs": tensors(RECORDS, hour={"data": [1, 2, 24]})},
        "input 'hour' element 2",
    ),
    (
        "unknown category",
        {"inputs": tensors(RECORDS, channel={"data": ["chip", "chip", "telepathy"]})},
        "input 'channel' element 2",
    ),
    (
        "NaN literal",
        json.dumps({"inputs": tensors(RECORDS, amount={"data": [1.0, "X", 3.0]})})
        .replace('"X"', "NaN")
        .encode(),
        "input 'amount' element 1: Input should be a finite number",
    ),
    (
        "unknown output",
        {"inputs": tensors(RECORDS), "outputs": [{"name": "logits"}]},
        "unknown output(s) ['logits']",
    ),
    (
        "binary input",
        {"inputs": tensors(RECORDS, amount={"parameters": {"binary_data_size": 12}})},
        "binary tensor data is not supported",
    ),
]


@pytest.mark.parametrize(("name", "body", "expected"), BAD, ids=[c[0] for c in BAD])
def test_bad_infer_requests_are_400(
    app_client: TestClient, model_name: str, name: str, body: Any, expected: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = app_client.post(
        f"/v2/models/{model_name}/infer",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, (name, response.text)
    assert list(response.json()) == ["error"]
    assert expected in response.json()["error"], response.json()["error"]


def test_unknown_model_and_version_are_404(app_client: TestClient, model_name: str) -> None:
    version = app_client.get("/model").json()["version"]
    body = {"inputs": tensors(RECORDS)}
    for method, path in [
        ("get", "/v2/models/other-model"),
        ("get", "/v2/models/other-model/ready"),
        ("post", "/v2/models/other-model/infer"),
        ("get", f"/v2/models/{model_name}/versions/999"),
        ("get", f"/v2/models/{model_name}/versions/999/ready"),
        ("post", f"/v2/models/{model_name}/versions/999/infer"),
        ("post", f"/v2/models/other-model/versions/{version}/infer"),
    ]:
        response = app_client.request(method, path, json=body if method == "post" else None)
        assert response.status_code == 404, (path, response.text)
        assert list(response.json()) == ["error"], path
    response = app_client.post(
        f"/v2/models/{model_name}/infer",
        content=json.dumps(body),
        headers={"inference-header-content-length": "10"},
    )
    assert response.status_code == 400 and "binary" in response.json()["error"]


def test_not_ready_is_503(tmp_path: Path) -> None:
    settings = make_settings("http://127.0.0.1:9/", "no-such-model", tmp_path)
    with running(settings, ready=False) as client:
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 503
        for method, path in [
            ("get", "/v2/models/no-such-model"),
            ("get", "/v2/models/no-such-model/ready"),
            ("post", "/v2/models/no-such-model/infer"),
        ]:
            response = client.request(method, path, json={"inputs": tensors(RECORDS)})
            assert response.status_code == 503, (path, response.text)
            assert "not ready" in response.json()["error"]


@pytest.mark.slow
def test_tritonclient_speaks_to_our_server(registered_model: Any, served_url: str) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    records = sample_records(16)
    url = served_url
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(registered_model.name)
    metadata = client.get_model_metadata(registered_model.name)
    version = metadata["versions"][0]
    assert version == str(registered_model.version)
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == EXPECTED_DATATYPES
    inputs = []
    for tensor in metadata["inputs"]:
        name, datatype = tensor["name"], tensor["datatype"]
        values = np.array([r[name] for r in records], dtype=NUMPY[datatype])
        infer_input = httpclient.InferInput(name, [len(records)], datatype)
        infer_input.set_data_from_numpy(values, binary_data=False)
        inputs.append(infer_input)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=False)
        for name in ("label", "probabilities")
    ]
    result = client.infer(registered_model.name, inputs, outputs=outputs, request_id="r1")
    labels = result.as_numpy("label")
    probabilities = result.as_numpy("probabilities")
    assert labels is not None and probabilities is not None
    assert probabilities.shape == (16, len(CLASS_NAMES))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert {str(v) for v in labels} <= set(CLASS_NAMES)
    assert [CLASS_NAMES[i] for i in probabilities.argmax(axis=1)] == [str(v) for v in labels]
    response = result.get_response()
    assert (response["model_version"], response["id"]) == (version, "r1")
    # No outputs named: tritonclient asks for binary outputs; JSON is what it gets and reads.
    plain = client.infer(registered_model.name, inputs, model_version=version)
    np.testing.assert_allclose(plain.as_numpy("probabilities"), probabilities)

    with pytest.raises(InferenceServerException) as wrong_version:
        client.infer(registered_model.name, inputs, model_version="999")
    assert wrong_version.value.status() == "404"
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("other-model")
    assert unknown.value.status() == "404"
    bad = httpclient.InferInput("hour", [len(records)], "FP32")
    bad.set_data_from_numpy(np.zeros(len(records), dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException) as mismatch:
        client.infer(registered_model.name, [i for i in inputs if i.name() != "hour"] + [bad])
    assert mismatch.value.status() == "400"
    assert "datatype FP32 does not match the model's INT64" in mismatch.value.message()
    binary = httpclient.InferInput("amount", [len(records)], "FP32")
    binary.set_data_from_numpy(np.ones(len(records), dtype=np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(registered_model.name, [i for i in inputs if i.name() != "amount"] + [binary])
    assert refused.value.status() == "400"
    client.close()
