"""Cache entries are authenticated (serving/cache.py): whoever holds the Redis password can
write any entry, but one not signed with CACHE_HMAC_KEY (which Redis never holds), one altered
after signing, or one copied to another record's key is a counted miss, never an answer. Real
Redis (TEST_REDIS_URL)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.schema import CLASS_NAMES
from {{ cookiecutter.package_name }}.serving.cache import SIGNED, PredictionCache
from {{ cookiecutter.package_name }}.serving.metrics import Metrics
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import require_env
from .conftest import Store, make_settings, running, wait_until

KEY = "kR3v9-Lq0ZpX2mW7tB4nYc8sJ1uFh6Dg"


def _cache(url: str, tmp_path: Path, hmac_key: str | None = KEY) -> PredictionCache:
    settings = Settings(
        _env_file=None,
        project_root=tmp_path,
        redis_url=url,
        cache_hmac_key=hmac_key,
        cache_timeout_seconds=2,
    )
    return PredictionCache(url, settings, Metrics())


def _prediction(label: str) -> dict[str, Any]:
    others = [name for name in CLASS_NAMES if name != label]
    return {"label": label, "probabilities": {label: 0.9, **{n: 0.1 / len(others) for n in others}}}


def _counted(cache: PredictionCache, result: str) -> float:
    return cache.lookups.labels(result=result)._value.get()


@pytest.mark.integration
def test_only_entries_signed_with_the_key_for_their_own_key_are_served(tmp_path: Path) -> None:
    url = require_env("TEST_REDIS_URL")
    raw = redis.Redis.from_url(url)
    one, other = (f"prediction:integrity-{uuid.uuid4().hex}:{i}" for i in (1, 2))
    honest, flipped = _prediction(CLASS_NAMES[0]), _prediction(CLASS_NAMES[-1])

    async def scenario() -> None:
        cache = _cache(url, tmp_path)
        try:
            cache.set_later(one, honest)
            await asyncio.wait(cache._pending)
            stored = bytes(raw.get(one) or b"")
            assert stored.startswith(SIGNED)
            assert await cache.get(one) == honest  # the writer's own entry: a hit
            # A Redis client writes a label of its choice: plain JSON, as the cache once stored.
            raw.set(one, json.dumps(flipped))
            assert await cache.get(one) is None
            # The signed envelope kept, the prediction in it altered.
            raw.set(one, stored.replace(json.dumps(honest).encode(), json.dumps(flipped).encode()))
            assert await cache.get(one) is None
            # A genuine entry moved to another record's key.
            raw.set(other, stored)
            assert await cache.get(other) is None
            # Signed with another key (another deployment's, or a guess).
            outsider = _cache(url, tmp_path, hmac_key="aX9" + KEY[3:])
            outsider.set_later(one, flipped)
            await asyncio.wait(outsider._pending)
            await outsider.close()
            assert await cache.get(one) is None
            assert (_counted(cache, "invalid"), _counted(cache, "hit")) == (4, 1)
        finally:
            raw.delete(one, other)
            await cache.close()

    asyncio.run(scenario())
    raw.close()


@pytest.mark.integration
def test_without_a_key_each_process_signs_with_its_own(tmp_path: Path) -> None:
    url = require_env("TEST_REDIS_URL")
    key = f"prediction:integrity-{uuid.uuid4().hex}:1"

    async def scenario() -> None:
        first, second = _cache(url, tmp_path, None), _cache(url, tmp_path, None)
        try:
            first.set_later(key, _prediction(CLASS_NAMES[0]))
            await asyncio.wait(first._pending)
            assert await first.get(key) is not None
            assert await second.get(key) is None
        finally:
            await first.close()
            await second.close()
            redis.Redis.from_url(url).delete(key)

    asyncio.run(scenario())


def _invalid(client: TestClient) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "prediction_cache_requests_total" and sample.labels == {
                "result": "invalid"
            }:
                return float(sample.value)
    return 0.0


@pytest.mark.integration
def test_a_forged_label_is_never_served(
    store: Store, tmp_path: Path, record: dict[str, Any]
) -> None:
    url = require_env("TEST_REDIS_URL")
    raw = redis.Redis.from_url(url)
    pattern = f"prediction:{store.name}:*"
    for stale in raw.keys(pattern):
        raw.delete(stale)
    settings = make_settings(
        store.tracking_uri, store.name, tmp_path, redis_url=url, cache_hmac_key=KEY
    )
    with running(settings) as client:
        first = client.post("/predict", json=record).json()
        wait_until(lambda: bool(raw.keys(pattern)))
        (key,) = raw.keys(pattern)
        forged_label = next(name for name in CLASS_NAMES if name != first["label"])
        raw.set(key, json.dumps(_prediction(forged_label)))
        second = client.post("/predict", json=record).json()
        assert second["label"] == first["label"]
        assert second["probabilities"] == first["probabilities"]
        assert _invalid(client) == 1
    raw.delete(*raw.keys(pattern))
    raw.close()
