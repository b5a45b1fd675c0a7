"""MLflow's scoring protocol (`/invocations`, `/ping`, `/version`): every input format, the
payload cases of MLflow's own scoring-server tests (malformed JSON, two format keys,
split-vs-records mix-ups, mismatched index, empty CSV, bad params), MLflow's own client, and
the same payloads sent to `mlflow models serve` on the same registered version."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from {{ cookiecutter.package_name }}.serving.requests import example_record

from .conftest import make_settings, running
from .protocol_servers import mlflow_models_serve

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}


def sample_records(n: int) -> list[dict[str, Any]]:
    """Valid, varied records (every category and a spread of numbers)."""
    records = []
    for i in range(n):
        record = example_record()
        for feature in FEATURES:
            if feature.kind == "categorical":
                record[feature.name] = feature.categories[i % len(feature.categories)]
        record["amount"] = round(3.5 + 97.25 * i, 2)
        record["hour"] = i % 24
        record["amount_to_avg_ratio"] = round(0.2 + 0.9 * (i % 7), 3)
        record["foreign_transaction"] = i % 2
        records.append(record)
    return records


def split(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    columns = list(FEATURE_NAMES)
    return {
        "dataframe_split": {
            "columns": columns,
            "data": [[r[c] for c in columns] for r in records],
            **extra,
        }
    }


def to_csv(records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(FEATURE_NAMES), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue().encode()


def invoke(client: TestClient, body: Any, headers: dict[str, str] = JSON) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/invocations", content=content, headers=headers)


def reference(client: TestClient, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What /predict/batch says for the same records, in MLflow's columnar layout."""
    response = client.post("/predict/batch", json={"records": records})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    return {
        "label": [CLASS_NAMES.index(p["label"]) for p in predictions],
        "probabilities": [[p["probabilities"][c] for c in CLASS_NAMES] for p in predictions],
    }


RECORDS = sample_records(12)


@pytest.mark.parametrize(
    ("name", "body", "headers"),
    [
        ("dataframe_split", split(RECORDS), JSON),
        ("dataframe_split with index", split(RECORDS, index=list(range(100, 112))), JSON),
        ("dataframe_split, columns shuffled", None, JSON),
        ("dataframe_records", {"dataframe_records": RECORDS}, JSON),
        ("instances (named)", {"instances": RECORDS}, JSON),
        ("inputs (columns)", {"inputs": {c: [r[c] for r in RECORDS] for c in FEATURE_NAMES}}, JSON),
        ("inputs (records)", {"inputs": RECORDS}, JSON),
        ("empty params", {**split(RECORDS), "params": {}}, JSON),
        ("charset=UTF-8", split(RECORDS), {"Content-Type": "application/json; charset=UTF-8"}),
        ("csv", to_csv(RECORDS), CSV),
        ("csv; charset=utf-8", to_csv(RECORDS), {"Content-Type": "text/csv; charset=utf-8"}),
    ],
)
def test_every_format_scores_like_predict_batch(
    app_client: TestClient, name: str, body: Any, headers: dict[str, str]
) -> None:
    if body is None:  # the columns in another order than the schema's
        columns = list(reversed(FEATURE_NAMES))
        body = {
            "dataframe_split": {
                "columns": columns,
                "data": [[r[c] for c in columns] for r in RECORDS],
            }
        }
    response = invoke(app_client, body, headers)
    assert response.status_code == 200, (name, response.text)
    assert list(response.json()) == ["predictions"]
    predictions = response.json()["predictions"]
    assert list(predictions) == ["label", "probabilities"]
    expected = reference(app_client, RECORDS)
    assert predictions["label"] == expected["label"]
    for got, want in zip(predictions["probabilities"], expected["probabilities"], strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert response.headers["x-model-version"] == str(app_client.get("/model").json()["version"])


def _with(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**record, **changes}


RECORD = example_record()
BAD_REQUESTS: list[tuple[str, Any, str]] = [
    # MLflow's own cases (tests/pyfunc/test_scoring_server.py)
    (
        "malformed json",
        b"this is,,,, not valid json",
        "Ensure that input is a valid JSON formatted string",
    ),
    ("json number", b"1", "exactly one of the input fields"),
    ("json string", b'"1"', "exactly one of the input fields"),
    ("json list", b"[1]", "exactly one of the input fields"),
    ("no format key", {"not": "a serialized dataframe"}, "exactly one of the input fields"),
    (
        "two format keys",
        {"dataframe_records": [], "dataframe_split": {"data": []}},
        "exactly one of the input fields",
    ),
    (
        "split given records",
        {"dataframe_split": [RECORD]},
        "dataframe_split: Dataframe split format must be a dictionary. Got list",
    ),
    (
        "records given split",
        {"dataframe_records": split([RECORD])["dataframe_split"]},
        "dataframe_records: Dataframe records format must be a list of records. Got dictionary",
    ),
    (
        "mismatched index",
        split([RECORD, RECORD, RECORD], index=[1, 2]),
        "dataframe_split.index: Provided dataframe_split field is not a valid dataframe",
    ),
    (
        "row shorter than columns",
        {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [[1], [2], [3]]}},
        "dataframe_split.data[0]: Provided dataframe_split field is not a valid dataframe",
    ),
    (
        "incompatible frame (positional columns)",
        {"dataframe_split": {"data": [[i] for i in range(10)]}},
        "dataframe_split.columns",
    ),
    (
        "split with an unknown key",
        split([RECORD], dtype="x"),
        "dataframe_split: Dataframe split format",
    ),
    (
        "params not an object",
        {**split([RECORD]), "params": [1]},
        "params: Params must be a dictionary",
    ),
    ("unknown param", {**split([RECORD]), "params": {"param1": "x"}}, "params.param1"),
    (
        "unknown top-level field",
        {**split([RECORD]), "extra": 1},
        "body: unknown field(s) ['extra']",
    ),
    # Validation MLflow does not do (measured: it answers 200 to both of the first two)
    (
        "unknown column",
        {"dataframe_records": [_with(RECORD, colour="red")]},
        "dataframe_records[0].colour: unknown column",
    ),
    (
        "out of range",
        {"dataframe_records": [_with(RECORD, amount=-5)]},
        "dataframe_records[0].amount: Input should be greater than or equal to 0",
    ),
    (
        "missing column",
        {"dataframe_records": [{k: v for k, v in RECORD.items() if k != "hour"}]},
        "dataframe_records[0].hour: missing feature",
    ),
    (
        "NaN literal",
        b'{"dataframe_records": [{"amount": NaN}]}',
        "Ensure that input is a valid JSON",
    ),
    (
        "infinity by overflow",
        json.dumps({"dataframe_records": [_with(RECORD, amount="X")]})
        .replace('"X"', "1e999")
        .encode(),
        "number is infinity",
    ),
    (
        "null value",
        {"dataframe_records": [_with(RECORD, amount=None)]},
        "dataframe_records[0].amount",
    ),
    (
        "string for a number",
        {"dataframe_records": [_with(RECORD, hour="noon")]},
        "dataframe_records[0].hour",
    ),
    (
        "fraction for an integer",
        {"dataframe_records": [_with(RECORD, hour=3.5)]},
        "dataframe_records[0].hour",
    ),
    (
        "unknown category",
        {"dataframe_records": [_with(RECORD, channel="telepathy")]},
        "dataframe_records[0].channel",
    ),
    (
        "second row bad",
        split([RECORD, _with(RECORD, customer_age=7)]),
        "dataframe_split.data[1].customer_age",
    ),
    (
        "columns named twice",
        {"dataframe_split": {"columns": ["amount", "amount"], "data": [[1, 2]]}},
        "duplicated column(s) ['amount']",
    ),
    (
        "instances positional",
        {"instances": [[1, 2, 3]]},
        "instances[0]: each row must be an object",
    ),
    (
        "inputs column lengths differ",
        {"inputs": {"amount": [1.0, 2.0], "hour": [1]}},
        "inputs: columns of different lengths",
    ),
    (
        "inputs column not a list",
        {"inputs": {"amount": 1.0}},
        "inputs.amount: a list of values is required",
    ),
    (
        "inputs named column bad",
        {"inputs": {c: [_with(RECORD, hour=99)[c]] for c in FEATURE_NAMES}},
        "inputs.hour[0]",
    ),
    ("no rows", {"dataframe_records": []}, "dataframe_records[0]: no rows to score"),
    ("too many rows", {"dataframe_records": [RECORD] * 101}, "at most 100 per request"),
    ("invalid utf-8", b'{"dataframe_records": ["\xff"]}', "Ensure that input is a valid JSON"),
]
BAD_CSV: list[tuple[str, bytes, str]] = [
    ("empty CSV", b"", "body: empty CSV"),
    ("header only", ",".join(FEATURE_NAMES).encode() + b"\n", "no rows to score"),
    ("pandas index column", b"," + to_csv([RECORD]), "unnamed column"),
    ("short line", to_csv([RECORD]) + b"1,2\n", "csv line 3: 2 values"),
    ("empty cell", to_csv([_with(RECORD, amount="")]), "csv row 1 column amount"),
    ("nan cell", to_csv([_with(RECORD, amount="nan")]), "csv row 1 column amount"),
    ("inf cell", to_csv([_with(RECORD, amount="inf")]), "csv row 1 column amount"),
    (
        "unknown column",
        to_csv([RECORD]).replace(b"amount", b"amount_eur", 1),
        "csv row 1 column amount_eur: unknown column",
    ),
    (
        "not utf-8",
        to_csv([_with(RECORD, channel="ch\xefp")]).decode().encode("latin-1"),
        "valid UTF-8",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "expected"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_json_is_a_400_naming_the_field(
    app_client: TestClient, name: str, body: Any, expected: str
) -> None:
    response = invoke(app_client, body)
    assert response.status_code == 400, (name, response.text)
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert error["error_code"] == "BAD_REQUEST"
    assert expected in error["message"], error["message"]


@pytest.mark.parametrize(("name", "body", "expected"), BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_is_a_400_naming_the_field(
    app_client: TestClient, name: str, body: bytes, expected: str
) -> None:
    response = invoke(app_client, body, CSV)
    assert response.status_code == 400, (name, response.text)
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert expected in response.json()["message"], response.json()["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "not_a_supported_content_type",
        "text/plain",
        "application/vnd.apache.parquet",
        "application/json; charset=latin-1",
        "application/json; something=something",
        "text/csv; charset=utf-16",
    ],
)
def test_other_media_types_are_415(app_client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = app_client.post("/invocations", content=json.dumps(split([RECORD])), headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error_code"] == "BAD_REQUEST"


def test_ping_and_version(app_client: TestClient) -> None:
    from mlflow.version import VERSION

    assert app_client.get("/ping").status_code == 200
    assert app_client.get("/version").text == VERSION


def test_ping_and_invocations_are_503_until_a_model_is_loaded(tmp_path: Path) -> None:
    settings = make_settings("http://127.0.0.1:9/", "no-such-model", tmp_path)
    with running(settings, ready=False) as client:
        assert client.get("/ping").status_code == 503
        response = invoke(client, split([RECORD]))
        assert response.status_code == 503
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


@pytest.fixture(scope="module")
def servers(
    registered_model: Any, served_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(ours, mlflow models serve) on the same registered version, over real HTTP."""
    with mlflow_models_serve(registered_model, tmp_path_factory.mktemp("mlflow-serve")) as theirs:
        yield served_url, theirs


@pytest.mark.slow
def test_mlflow_scoring_client_speaks_to_our_server(served_url: str) -> None:
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient
    from mlflow.version import VERSION

    host, port = served_url.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=30)
    assert client.get_version() == VERSION
    frame = pd.DataFrame(sample_records(20))
    predictions = client.invoke(frame).get_predictions()
    assert list(predictions.columns) == ["label", "probabilities"]
    assert len(predictions) == 20
    assert set(predictions["label"]) <= set(range(len(CLASS_NAMES)))
    for row in predictions["probabilities"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(Exception, match="error code 400"):
        client.invoke(frame.assign(amount=-5.0))


def _post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    import requests

    response = requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=60
    )
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def _close(a: Any, b: Any) -> bool:
    """Same JSON: same keys in the same order, same types, floats within 1e-6."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and math.isclose(a, b, abs_tol=1e-6)
    return type(a) is type(b) and a == b


@pytest.mark.slow
def test_same_answers_as_mlflow_models_serve(servers: tuple[str, str]) -> None:
    ours, theirs = servers
    records = sample_records(64)
    same = {
        "dataframe_split": json.dumps(split(records)).encode(),
        "dataframe_split with index": json.dumps(split(records, index=list(range(64)))).encode(),
        "dataframe_records": json.dumps({"dataframe_records": records}).encode(),
        "one row": json.dumps(split(records[:1])).encode(),
    }
    for name, body in same.items():
        status_ours, body_ours = _post(ours, body)
        status_theirs, body_theirs = _post(theirs, body)
        assert (status_ours, status_theirs) == (200, 200), (name, body_ours, body_theirs)
        assert _close(body_ours, body_theirs), (name, body_ours, body_theirs)
    status, body = _post(ours, to_csv(records), "text/csv")
    assert status == 200 and _close(body, _post(theirs, same["dataframe_split"])[1])

    # Named-column `instances` and `inputs`: MLflow refuses them for this model, we score them.
    named = {
        "instances": {"instances": records},
        "inputs": {"inputs": {c: [r[c] for r in records] for c in FEATURE_NAMES}},
    }
    expected = _post(theirs, same["dataframe_split"])[1]
    for name, payload in named.items():
        body = json.dumps(payload).encode()
        assert _post(theirs, body)[0] == 400, name
        status, answer = _post(ours, body)
        assert status == 200 and _close(answer, expected), (name, answer)

    # What MLflow scores without a word, we refuse naming the field.
    for name, row in {
        "unknown column": _with(records[0], colour="red"),
        "amount -5": _with(records[0], amount=-5.0),
    }.items():
        body = json.dumps({"dataframe_records": [row]}).encode()
        assert _post(theirs, body)[0] == 200, name
        status, answer = _post(ours, body)
        assert status == 400 and answer["error_code"] == "BAD_REQUEST", (name, answer)
