"""The columnar fast path of the protocols (`dataframe_split`, `inputs` as columns, Open
Inference tensors): a body whose values are all valid as sent goes straight from its columns
to the model; anything else takes the row path. Both must give the same answers, the same
drift-window records and the same verdict on bad values."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.serving.protocols.rows import RowScorer
from {{ cookiecutter.package_name }}.serving.requests import build_request_models

from .test_mlflow_protocol import JSON, RECORDS, invoke, split

# (feature, value) that the columnar check hands to the row path (a conversion or a refusal)
ODD_VALUES: list[tuple[str, Any]] = [
    ("amount", "12.5"),  # a number as a string
    ("hour", 3.0),  # an integral float for an integer feature
    ("hour", 3.5),
    ("foreign_transaction", True),  # bool is not a number here
    ("amount", -5),
    ("amount", 10**400),  # beyond float range
    ("txn_count_24h", 10**30),
    ("hour", None),
    ("channel", "telepathy"),
    ("channel", "x" * 500),
    ("channel", 7),
]


def scorer_of(client: TestClient) -> RowScorer:
    services = client.app.state.services  # type: ignore[attr-defined]
    record_model, _ = build_request_models(
        services.settings.unknown_category, services.settings.max_batch_size
    )
    return RowScorer(services, record_model, services.settings.max_batch_size)


def columns_of(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in records] for name in FEATURE_NAMES}


def test_valid_columns_take_the_fast_path_and_odd_values_do_not(app_client: TestClient) -> None:
    scorer = scorer_of(app_client)
    assert scorer.valid_columns(columns_of(RECORDS)) is not None
    for name, value in ODD_VALUES:
        records = [dict(RECORDS[0]), {**RECORDS[1], name: value}]
        assert scorer.valid_columns(columns_of(records)) is None, (name, value)
    assert scorer.valid_columns({**columns_of(RECORDS), "extra": [1] * len(RECORDS)}) is None
    missing = columns_of(RECORDS)
    del missing["hour"]
    assert scorer.valid_columns(missing) is None


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, v in ODD_VALUES if v != 10**400])
def test_odd_values_get_the_row_paths_verdict(
    app_client: TestClient, name: str, value: Any
) -> None:
    records = [dict(RECORDS[0]), {**RECORDS[1], name: value}]
    columnar = invoke(app_client, split(records))
    by_rows = invoke(app_client, {"dataframe_records": records})
    assert columnar.status_code == by_rows.status_code, (columnar.text, by_rows.text)
    if by_rows.status_code == 200:
        assert columnar.json() == by_rows.json()
    else:
        assert by_rows.status_code == 400
        assert name in columnar.json()["message"] and name in by_rows.json()["message"]


def test_the_fast_path_feeds_the_drift_window_like_the_row_path(client: TestClient) -> None:
    monitor = client.app.state.services.drift  # type: ignore[attr-defined]
    assert monitor is not None
    response = invoke(client, split(RECORDS))
    assert response.status_code == 200, response.text
    _, profile, columnar_records, columnar_scores = monitor.snapshot()
    assert profile is not None, "the registered model has a drift reference"
    response = invoke(client, {"dataframe_records": RECORDS}, JSON)
    assert response.status_code == 200, response.text
    _, _, records, scores = monitor.snapshot()
    n = len(RECORDS)
    assert records[:n] == records[n:] == columnar_records
    assert [type(v) for r in columnar_records for v in r.values()] == [
        type(v) for r in records[n:] for v in r.values()
    ]
    assert scores[:n] == pytest.approx(scores[n:]) and scores[:n] == columnar_scores
