"""One scoring core behind every entry: a request of each protocol and a `score` chunk go
through the same validator and predictor; every HTTP route scores through
`ScoringService.score`, so each feeds the cache (real Redis), the prediction log (the real
logger, writing to a real database) and the drift window."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.batch_scoring import score_file
from {{ cookiecutter.package_name }}.inference.predictor import Predictor
from {{ cookiecutter.package_name }}.inference.validation import Validator
from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import require_env
from .conftest import running, wait_until
from .test_mlflow_protocol import sample_records, split
from .test_open_inference import tensors

HAS_CACHE = importlib.util.find_spec("{{ cookiecutter.package_name }}.serving.cache") is not None
HAS_LOG = importlib.util.find_spec("{{ cookiecutter.package_name }}.serving.prediction_log") is not None


def requests_of_each_route(model_name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """(path, JSON body) of one request per scoring route, all of `records`' first row(s)."""
    return {
        "/predict": ("/predict", records[0]),
        "/predict/batch": ("/predict/batch", {"records": records}),
        "/invocations": ("/invocations", split(records)),
        "OIP infer": (f"/v2/models/{model_name}/infer", {"inputs": tensors(records)}),
    }


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Rows each core function saw, call by call: the validator (any of its entries) and the
    predictor."""
    calls: dict[str, list[int]] = {"check": [], "predict": []}

    def rows_of(entry: str, args: tuple[Any, ...]) -> int:
        if entry == "records":
            return len(args[0])
        if entry == "columns":
            return int(args[1])
        return int(args[0].num_rows if entry == "arrow" else len(args[0]))

    for entry in ("records", "columns", "arrow", "frame"):
        original = getattr(Validator, entry)

        def checking(
            self: Validator, *args: Any, _f: Any = original, _e: str = entry, **kw: Any
        ) -> Any:
            calls["check"].append(rows_of(_e, args))
            return _f(self, *args, **kw)

        monkeypatch.setattr(Validator, entry, checking)
    predict = Predictor.predict

    def predicting(self: Predictor, batch: Any) -> Any:
        calls["predict"].append(batch.size)
        return predict(self, batch)

    monkeypatch.setattr(Predictor, "predict", predicting)
    return calls


def test_each_protocol_and_a_score_chunk_go_through_the_same_core(
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    seen: dict[str, list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = sample_records(3)
    with running(settings_for(adaptive_batching=False)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        routes = requests_of_each_route(services.settings.model_name, records)
        for name, (path, body) in routes.items():
            before = (len(seen["check"]), len(seen["predict"]))
            response = client.post(path, json=body)
            assert response.status_code == 200, (name, response.text)
            rows = 1 if name == "/predict" else len(records)
            assert seen["check"][before[0] :] == [rows], name
            assert seen["predict"][before[1] :] == [rows], name
        model = services.predictor()
        source = tmp_path / "input.csv"
        lines = [",".join(FEATURE_NAMES)] + [
            ",".join(str(r[name]) for name in FEATURE_NAMES) for r in records
        ]
        source.write_text("\n".join(lines) + "\n")
        before = (len(seen["check"]), len(seen["predict"]))
        summary = score_file(
            source, tmp_path / "out.csv", tmp_path / "rejects.csv", services.settings, model=model
        )
        assert summary.scored == len(records)
        assert seen["check"][before[0] :] == [len(records)]
        assert seen["predict"][before[1] :] == [len(records)]


@pytest.fixture
def redis_url(settings_for: Callable[..., Settings]) -> Iterator[str | None]:
    if not HAS_CACHE:
        yield None
        return
    url = require_env("TEST_REDIS_URL")
    name = settings_for().model_name
    client = redis.Redis.from_url(url)
    keys = client.keys(f"prediction:{name}:*")
    if keys:
        client.delete(*keys)
    yield url
    client.close()


def cache_lookups(client: TestClient, result: str) -> float:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value("prediction_cache_requests_total", {"result": result}) or 0


@pytest.mark.integration
def test_every_route_feeds_the_cache_the_log_and_the_drift_window(
    settings_for: Callable[..., Settings], tmp_path: Path, redis_url: str | None
) -> None:
    overrides: dict[str, Any] = {"redis_url": redis_url}
    url = f"sqlite:///{tmp_path / 'log.db'}"
    if HAS_LOG:
        from ..db.helpers import count_records, upgrade

        upgrade(url)
        overrides.update(prediction_logging=True, database_url=url)
    records = sample_records(4)
    logged = 0
    with running(settings_for(**overrides)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        assert services.drift is not None
        routes = requests_of_each_route(services.settings.model_name, records)
        for name, (path, body) in routes.items():
            rows = 1 if name == "/predict" else len(records)
            window = len(services.drift.snapshot()[2])
            hits = cache_lookups(client, "hit") if HAS_CACHE else 0
            response = client.post(path, json=body)
            assert response.status_code == 200, (name, response.text)
            logged += rows
            assert len(services.drift.snapshot()[2]) == window + rows, name
            if HAS_CACHE:
                # every row was scored before (the first request of the first route excepted):
                # each route reads the cache row by row
                wait_until(lambda: bool(redis.Redis.from_url(redis_url).keys()), what="cache")
                again = client.post(path, json=body)
                assert again.json() == {**response.json(), **_ids(again.json())}, name
                assert cache_lookups(client, "hit") >= hits + rows, name
                logged += rows
    if HAS_LOG:
        assert count_records(url) == logged


def _ids(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of an answer that differ between two requests (their ids)."""
    return {key: body[key] for key in ("request_id", "id") if key in body}
