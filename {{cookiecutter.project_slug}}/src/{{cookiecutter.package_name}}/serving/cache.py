"""Redis prediction cache. A cache problem never fails a request.

Keys hold the model version, so a new model never serves an old answer. Every call has a
short timeout; after a failure the cache is skipped for `cache_retry_seconds` (counted as
`bypass`), so a dead Redis costs one timeout, not one per request.

Entries are authenticated: each is stored with an HMAC-SHA256 over its Redis key and its value,
made with CACHE_HMAC_KEY, a key Redis never holds. Whoever can write to Redis (its password is
shared with the cache's other clients) cannot forge an entry, alter one or copy one to another
record's key: what fails the check, and anything that is not a prediction of this model's
classes (a corrupted entry), is counted as `invalid`, treated as a miss and overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..redaction import describe
from ..schema import CLASS_NAMES
from ..settings import Settings
from .metrics import Metrics
from .responses import Prediction

log = logging.getLogger(__name__)

# A stored entry: SIGNED + hex HMAC + ":" + the prediction's JSON.
SIGNED = b"hmac-sha256:"


class PredictionCache:
    def __init__(self, url: str, settings: Settings, metrics: Metrics) -> None:
        self.ttl = settings.cache_ttl_seconds
        self.timeout = settings.cache_timeout_seconds
        self.retry_after = settings.cache_retry_seconds
        # this part's own metric, on the app's registry
        self.lookups = Counter(
            "prediction_cache_requests",
            "Cache lookups: hit, miss, invalid (an entry that is not a prediction: a miss), "
            "error (Redis failed or slow), bypass (skipped after error)",
            ["result"],
            registry=metrics.registry,
        )
        # The password from REDIS_PASSWORD(_FILE), read by settings in this process: REDIS_URL
        # carries none (a password in the URL, when given, wins).
        password = settings.redis_password
        self.client = Redis.from_url(
            url,
            password=password.get_secret_value() if password is not None else None,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        if settings.cache_hmac_key is not None:
            self._mac_key = settings.cache_hmac_key.get_secret_value().encode()
        else:
            # No shared key: this process signs with its own, so entries of other workers and
            # replicas are misses (safe, but the cache then helps one process only).
            self._mac_key = os.urandom(32)
            log.warning("CACHE_HMAC_KEY is not set: the cache is private to this process")
        self.last_error: str | None = None
        self._skip_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()

    @staticmethod
    def key(model_name: str, model_version: str, record: Mapping[str, Any]) -> str:
        """Model version + canonical hash of the (normalized) input."""
        canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return f"prediction:{model_name}:{model_version}:{digest}"

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> PredictionCache | None:
        return cls(settings.redis_url, settings, metrics) if settings.redis_url else None

    def _failed(self, exc: BaseException) -> None:
        self.lookups.labels(result="error").inc()
        error = describe(exc)
        if self.last_error is None:
            log.warning("Redis cache unavailable, serving without it: %s", error)
        self.last_error = error
        self._skip_until = time.monotonic() + self.retry_after

    async def get(self, key: str) -> dict[str, Any] | None:
        if time.monotonic() < self._skip_until:
            self.lookups.labels(result="bypass").inc()
            return None
        try:
            raw = await asyncio.wait_for(self.client.get(key), self.timeout)
        except Exception as exc:
            self._failed(exc)
            return None
        if self.last_error is not None:
            log.info("Redis cache is back")
            self.last_error = None
        if raw is None:
            self.lookups.labels(result="miss").inc()
            return None
        if not self._authentic(key, raw):
            self.lookups.labels(result="invalid").inc()
            log.warning("cache entry %s fails its HMAC (forged or moved): recomputed", key)
            return None
        value = self.valid(raw)
        if value is None:
            self.lookups.labels(result="invalid").inc()
            log.warning("cache entry %s is not a prediction of this model: recomputed", key)
            return None
        self.lookups.labels(result="hit").inc()
        return value

    def _mac(self, key: str, body: bytes) -> bytes:
        message = key.encode() + b"\0" + body
        return hmac.new(self._mac_key, message, hashlib.sha256).hexdigest().encode()

    def _sign(self, key: str, body: bytes) -> bytes:
        return SIGNED + self._mac(key, body) + b":" + body

    def _authentic(self, key: str, stored: bytes | str) -> bool:
        stored = stored.encode() if isinstance(stored, str) else stored
        if not stored.startswith(SIGNED):
            return False
        mac, separator, body = stored[len(SIGNED) :].partition(b":")
        return bool(separator) and hmac.compare_digest(mac, self._mac(key, body))

    @staticmethod
    def valid(raw: bytes | str) -> dict[str, Any] | None:
        """The cached prediction, or None when `raw` is not one: a label of this model's classes
        and one finite probability in [0, 1] per class, nothing else. A stored (signed) entry
        is checked on its JSON; its signature is `get`'s to check."""
        raw = raw.encode() if isinstance(raw, str) else raw
        if raw.startswith(SIGNED):
            raw = raw[len(SIGNED) :].partition(b":")[2]
        try:
            prediction = Prediction.model_validate_json(raw)
        except ValidationError:
            return None
        probabilities = prediction.probabilities
        if prediction.label not in CLASS_NAMES or set(probabilities) != set(CLASS_NAMES):
            return None
        if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probabilities.values()):
            return None
        return prediction.model_dump()

    def set_later(self, key: str, value: dict[str, Any]) -> None:
        """Store in the background: the response does not wait for Redis."""
        if time.monotonic() < self._skip_until:
            return
        task = asyncio.create_task(self._set(key, self._sign(key, json.dumps(value).encode())))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _set(self, key: str, raw: bytes) -> None:
        try:
            await asyncio.wait_for(self.client.set(key, raw, ex=self.ttl), self.timeout)
        except Exception as exc:
            self._failed(exc)

    async def check(self) -> str:
        try:
            await asyncio.wait_for(self.client.ping(), self.timeout)
        except Exception as exc:
            return f"down: {describe(exc)}"
        return "ok"

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=self.timeout * 2)
        await self.client.aclose()
