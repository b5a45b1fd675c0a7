"""Adaptive batching (serving/batching.py) on the real registered model: the single rows of
requests of one loop turn share a model call, and each request still gets its own row, its own
model and its own verdict. The failing model below is a stand-in: a real model that raises on
one input cannot be registered on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import ASGITransport, AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.inference.batch import ColumnBatch
from {{ cookiecutter.package_name }}.inference.predictor import Predictor
from {{ cookiecutter.package_name }}.inference.registry import load_registered_model
from {{ cookiecutter.package_name }}.inference.results import Classification
from {{ cookiecutter.package_name }}.inference.validation import Validator
from {{ cookiecutter.package_name }}.schema import CLASS_NAMES, FEATURES
from {{ cookiecutter.package_name }}.serving.batching import LONE_CALLS, PROBE_EVERY, RowBatcher
from {{ cookiecutter.package_name }}.serving.metrics import Metrics
from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import make_settings, running

NUMERIC = next(f for f in FEATURES if f.kind == "numeric" and f.dtype == "float")
POISON = 0.5  # the stand-in model fails on a record with this value


def records(n: int) -> list[dict[str, Any]]:
    """n different records (one float feature varies)."""
    low = NUMERIC.minimum or 0.0
    return [{**example_record(), NUMERIC.name: low + 1.0 + 7.0 * i} for i in range(n)]


@pytest.fixture(scope="module")
def model(registered_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    settings = make_settings(
        registered_model.tracking_uri, registered_model.name, tmp_path_factory.mktemp("batching")
    )
    return load_registered_model(settings)


def row(record: dict[str, Any]) -> ColumnBatch:
    """The record as the validator gives it to the service: a one-row batch."""
    return Validator().records([record])


def counting(model: Predictor, calls: list[int]) -> Predictor:
    """A copy of `model` (another model object) that records the rows of each call."""

    def score(batch: ColumnBatch) -> Classification:
        calls.append(batch.size)
        return model.score(batch)

    return replace(model, score=score)


def failing_on_poison(model: Predictor, calls: list[int]) -> Predictor:
    def score(batch: ColumnBatch) -> Classification:
        calls.append(batch.size)
        if (batch.columns[NUMERIC.name] == POISON).any():
            raise RuntimeError("model failed on this input")
        return model.score(batch)

    return replace(model, score=score)


def alone(model: Predictor, record: dict[str, Any]) -> Classification:
    return model.predict(row(record))


def same_scores(got: Classification, want: Classification) -> bool:
    """The same label and probabilities, in the shapes of a one-row model call."""
    if got.labels.shape != want.labels.shape or got.probabilities.shape != want.probabilities.shape:
        return False
    return bool(
        np.array_equal(got.labels, want.labels)
        and np.allclose(got.probabilities, want.probabilities, atol=1e-6)
    )


def concurrently(batcher: RowBatcher, pairs: list[tuple[Predictor, dict[str, Any]]]) -> list[Any]:
    """Submit every record in one loop turn, as requests arriving together do."""

    async def main() -> list[Any]:
        tasks = [batcher.predict(m, row(r)) for m, r in pairs]
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(main())


def test_rows_of_one_turn_share_one_model_call_and_each_gets_its_own_scores(
    model: Predictor,
) -> None:
    calls: list[int] = []
    counted = counting(model, calls)
    batch = records(8)
    results = concurrently(RowBatcher(Metrics(), max_rows=64), [(counted, r) for r in batch])
    assert calls == [8]
    for record, result in zip(batch, results, strict=True):
        assert same_scores(result, alone(model, record))


def test_a_lone_row_is_scored_in_a_call_of_its_own(model: Predictor) -> None:
    calls: list[int] = []
    [result] = concurrently(RowBatcher(Metrics(), 64), [(counting(model, calls), records(1)[0])])
    assert calls == [1]
    assert same_scores(result, alone(model, records(1)[0]))


def lone_requests(batcher: RowBatcher, model: Predictor, n: int) -> None:
    """n requests one after the other (concurrency 1)."""

    async def main() -> None:
        for record in records(n):
            await batcher.predict(model, row(record))

    asyncio.run(main())


def scored_without_yielding(
    batcher: RowBatcher, model: Predictor, record: dict[str, Any]
) -> Classification | None:
    """The request's scores when it got them without giving up its loop turn, else None."""
    step = batcher.predict(model, row(record))
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    step.close()
    return None


def test_after_lone_calls_a_lone_row_is_scored_at_once(model: Predictor) -> None:
    calls: list[int] = []
    counted = counting(model, calls)
    batcher = RowBatcher(Metrics(), 64)
    lone_requests(batcher, counted, LONE_CALLS - 1)
    assert batcher.queueing  # not yet: a few lone requests may be chance
    lone_requests(batcher, counted, 1)
    assert not batcher.queueing
    scores = scored_without_yielding(batcher, counted, records(1)[0])
    assert scores is not None and same_scores(scores, alone(model, records(1)[0]))
    assert calls == [1] * (LONE_CALLS + 1)


def test_a_burst_of_concurrent_requests_turns_queueing_back_on(model: Predictor) -> None:
    calls: list[int] = []
    counted = counting(model, calls)
    batcher = RowBatcher(Metrics(), 64)
    lone_requests(batcher, counted, LONE_CALLS)
    assert not batcher.queueing
    calls.clear()
    batch = records(2 * PROBE_EVERY)
    results = concurrently(batcher, [(counted, r) for r in batch])
    assert batcher.queueing
    assert max(calls) > 1 and sum(calls) == len(batch)  # the probe's queue found company
    for record, result in zip(batch, results, strict=True):
        assert same_scores(result, alone(model, record))


def test_calls_hold_at_most_max_rows(model: Predictor) -> None:
    calls: list[int] = []
    counted = counting(model, calls)
    concurrently(RowBatcher(Metrics(), max_rows=3), [(counted, r) for r in records(7)])
    assert calls == [3, 3, 1]


def test_each_request_is_scored_by_the_model_it_took(model: Predictor) -> None:
    # a reload swapped the model between two requests of one turn
    old_calls: list[int] = []
    new_calls: list[int] = []
    old, new = counting(model, old_calls), counting(model, new_calls)
    batch = records(5)
    pairs = [(old, batch[0]), (new, batch[1]), (old, batch[2]), (new, batch[3]), (old, batch[4])]
    results = concurrently(RowBatcher(Metrics(), 64), pairs)
    assert (old_calls, new_calls) == ([3], [2])
    for record, result in zip(batch, results, strict=True):
        assert same_scores(result, alone(model, record))


def test_a_row_the_model_fails_on_fails_only_its_own_request(model: Predictor) -> None:
    calls: list[int] = []
    fragile = failing_on_poison(model, calls)
    batch = records(4)
    batch[2] = {**batch[2], NUMERIC.name: POISON}
    results = concurrently(RowBatcher(Metrics(), 64), [(fragile, r) for r in batch])
    assert isinstance(results[2], RuntimeError)
    for i in (0, 1, 3):
        assert same_scores(results[i], alone(model, batch[i]))
    assert calls == [4, 1, 1, 1, 1]  # the batch, then each row alone


def test_a_request_cancelled_while_queued_does_not_disturb_the_others(model: Predictor) -> None:
    batcher = RowBatcher(Metrics(), 64)
    batch = records(3)

    async def main() -> list[Any]:
        tasks = [asyncio.create_task(batcher.predict(model, row(r))) for r in batch]
        await asyncio.sleep(0)  # every task queued its row; the batch is not scored yet
        tasks[1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert same_scores(results[0], alone(model, batch[0]))
    assert same_scores(results[2], alone(model, batch[2]))


def batch_rows(client: TestClient) -> tuple[float, float]:
    """(model calls, rows) of the app's `model_batch_rows` histogram."""
    text = client.get("/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "model_batch_rows")
    values = {s.name: s.value for s in family.samples}
    return values["model_batch_rows_count"], values["model_batch_rows_sum"]


def post_together(client: TestClient, bodies: list[dict[str, Any]]) -> list[Any]:
    """POST /predict with every body at once, in the app's own event loop."""

    async def main() -> list[Any]:
        transport = ASGITransport(app=client.app)
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.post("/predict", json=b) for b in bodies))

    return client.portal.call(main)  # type: ignore[union-attr]


def test_concurrent_predict_requests_share_model_calls(
    settings_for: Callable[..., Settings], model: Predictor
) -> None:
    batch = records(8)
    with running(settings_for()) as client:
        responses = post_together(client, batch)
        calls, rows = batch_rows(client)
    assert [r.status_code for r in responses] == [200] * 8
    assert rows == 8
    assert calls < 8
    for record, response in zip(batch, responses, strict=True):
        result = alone(model, record)
        labels, probabilities = result.labels, result.probabilities
        assert response.json()["label"] == CLASS_NAMES[labels[0]]
        want = dict(zip(CLASS_NAMES, probabilities[0].tolist(), strict=True))
        assert response.json()["probabilities"] == pytest.approx(want, abs=1e-6)


def test_adaptive_batching_off_scores_each_request_alone(
    settings_for: Callable[..., Settings],
) -> None:
    with running(settings_for(adaptive_batching=False)) as client:
        responses = post_together(client, records(8))
        text = client.get("/metrics").text
    assert [r.status_code for r in responses] == [200] * 8
    assert "model_batch_rows" not in text
