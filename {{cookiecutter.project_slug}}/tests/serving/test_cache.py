"""Redis cache: hits, keys per model version, and never a failed request when Redis is down
or slow (a private redis-server is killed, paused and restarted under load)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.schema import CLASS_NAMES
from {{ cookiecutter.package_name }}.serving.cache import PredictionCache
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import require_env
from .conftest import AUTH, Store, make_settings, running, wait_until
from .private_services import RedisServer


@pytest.fixture
def redis_url(store: Store) -> Iterator[str]:
    url = require_env("TEST_REDIS_URL")
    client = redis.Redis.from_url(url)
    pattern = f"prediction:{store.name}:*"
    client.delete(*client.keys(pattern)) if client.keys(pattern) else None
    yield url
    client.close()


@pytest.mark.integration
def test_second_call_is_a_hit_and_keyed_by_version(
    store: Store, redis_url: str, tmp_path: Any, record: dict[str, Any]
) -> None:
    settings = make_settings(store.tracking_uri, store.name, tmp_path, redis_url=redis_url)
    with running(settings) as client:
        first = client.post("/predict", json=record).json()
        wait_until(lambda: bool(redis.Redis.from_url(redis_url).keys(f"prediction:{store.name}:*")))
        second = client.post("/predict", json=record).json()
        # the answer does not say whether it was scored before (a client could probe what
        # others asked): the hit shows in the metric only
        assert "cached" not in first and "cached" not in second
        assert second["probabilities"] == first["probabilities"]
        assert second["request_id"] != first["request_id"]
        keys = redis.Redis.from_url(redis_url).keys(f"prediction:{store.name}:*")
        assert [k.decode().split(":")[2] for k in keys] == [store.version]
        assert (metric_value(client, "miss"), metric_value(client, "hit")) == (1, 1)

        # a new model version never serves the old version's answer
        new = store.add_version()
        store.set_champion(new)
        assert client.post("/admin/reload?wait=true", headers=AUTH).status_code == 200
        after = client.post("/predict", json=record).json()
        assert after["model_version"] == new
        assert (metric_value(client, "miss"), metric_value(client, "hit")) == (2, 1)


POISONED = {
    "not JSON": b"\x80garbage",
    "not a prediction": b'{"hello": "world"}',
    "unknown label": None,  # filled in below from the project's classes
    "a missing class": None,
    "a NaN probability": None,
    "a probability above 1": None,
}


def poisoned_entries() -> dict[str, bytes]:
    first = CLASS_NAMES[0]
    uniform = {name: 1 / len(CLASS_NAMES) for name in CLASS_NAMES}

    def entry(label: str, probabilities: dict[str, float]) -> bytes:
        return json.dumps({"label": label, "probabilities": probabilities}).encode()

    entries = {k: v for k, v in POISONED.items() if v is not None}
    entries["unknown label"] = entry("<script>", uniform)
    entries["a missing class"] = entry(first, {first: 1.0})
    entries["a NaN probability"] = entry(first, {**uniform, first: float("nan")})
    entries["a probability above 1"] = entry(first, {**uniform, first: 7.0})
    return entries


@pytest.mark.parametrize("what", list(POISONED))
def test_a_cached_value_that_is_not_a_prediction_is_refused(what: str) -> None:
    assert PredictionCache.valid(poisoned_entries()[what]) is None
    good = {"label": CLASS_NAMES[0], "probabilities": {n: 0.5 for n in CLASS_NAMES}}
    assert PredictionCache.valid(json.dumps(good)) == good


@pytest.mark.integration
def test_poisoned_entry_is_a_counted_miss_never_a_500(
    store: Store, redis_url: str, tmp_path: Any, record: dict[str, Any]
) -> None:
    settings = make_settings(store.tracking_uri, store.name, tmp_path, redis_url=redis_url)
    cache = redis.Redis.from_url(redis_url)
    pattern = f"prediction:{store.name}:*"
    with running(settings) as client:
        first = client.post("/predict", json=record).json()
        wait_until(lambda: bool(cache.keys(pattern)))
        (key,) = cache.keys(pattern)
        for count, (what, poison) in enumerate(poisoned_entries().items(), start=1):
            cache.set(key, poison)
            response = client.post("/predict", json=record)
            assert response.status_code == 200, (what, response.text)
            body = response.json()
            assert body["probabilities"] == first["probabilities"]
            assert metric_value(client, "invalid") == count, what
            # the recomputed prediction replaces the poisoned entry
            wait_until(lambda: PredictionCache.valid(cache.get(key) or b"") is not None)
        hits = metric_value(client, "hit")
        assert client.post("/predict", json=record).status_code == 200
        assert metric_value(client, "hit") == hits + 1
    cache.close()


@pytest.mark.integration
def test_ready_reports_redis(settings_for: Callable[..., Settings], redis_url: str) -> None:
    with running(settings_for(redis_url=redis_url)) as client:
        assert client.get("/ready").json()["dependencies"]["redis"] == "ok"


def _hammer(
    client: TestClient, record: dict[str, Any], statuses: Counter[int], stop: threading.Event
) -> list[threading.Thread]:
    def worker() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            varied = {**record, "amount": float(i % 50)}
            statuses[client.post("/predict", json=varied).status_code] += 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.slow
def test_redis_stopped_and_slow_under_load(
    settings_for: Callable[..., Settings], tmp_path: Any, record: dict[str, Any]
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    settings = settings_for(redis_url=server.url, cache_retry_seconds=0.2)
    statuses: Counter[int] = Counter()
    stop = threading.Event()
    try:
        with running(settings) as client:
            threads = _hammer(client, record, statuses, stop)
            try:
                wait_until(lambda: metric_value(client, "hit") > 0, 30, "cache hits")
                # slow: Redis blocks for a second; requests go on without it
                redis.Redis.from_url(server.url).execute_command("DEBUG", "SLEEP", "0")
                slow = threading.Thread(
                    target=lambda: redis.Redis.from_url(server.url).execute_command(
                        "DEBUG", "SLEEP", "1"
                    )
                )
                slow.start()
                time.sleep(0.1)
                started = time.perf_counter()
                assert client.post("/predict", json=record).status_code == 200
                assert time.perf_counter() - started < 0.5
                slow.join()
                # down
                server.stop()
                wait_until(lambda: metric_value(client, "error") > 0, 30, "cache errors")
                time.sleep(1)
                assert client.get("/ready").status_code == 200
                assert client.get("/ready").json()["dependencies"]["redis"].startswith("down")
                # back
                server.start()
                hits = metric_value(client, "hit")
                wait_until(lambda: metric_value(client, "hit") > hits, 30, "hits after restart")
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
        assert set(statuses) == {200}, statuses
    finally:
        server.stop()


def metric_value(client: TestClient, result: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "prediction_cache_requests_total" and sample.labels == {
                "result": result
            }:
                return float(sample.value)
    return 0.0
