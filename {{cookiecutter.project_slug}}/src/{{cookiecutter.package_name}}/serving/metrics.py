"""Prometheus metrics of one app (its own registry, so several apps can live in one process).

The core metrics live here; the optional cache and prediction log register their own on this
registry (a project generated without them has none of their metrics)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from ..schema import CLASS_NAMES

# Request latency buckets (seconds): the server answers in about a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.predictions = Counter(
            "predictions", "Predictions served, by predicted class", ["label"], registry=r
        )
        # one child per class, created once: every class shows from the start (a 0, not a gap)
        # and the request path skips the label lookup
        self._predicted = {name: self.predictions.labels(label=name) for name in CLASS_NAMES}
        # one series per worker process: replicas converging on a new version show in Grafana
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.model_version = Gauge(
            "model_loaded_version",
            "Registry version of the loaded model (0 = none), per worker",
            ["name", "alias", "worker"],
            registry=r,
        )
        self.model_load_failures = Counter(
            "model_load_failures", "Failed model loads and reloads", registry=r
        )
        self.alias_poll_failures = Counter(
            "model_alias_poll_failures",
            "Checks of where the alias points that failed (registry unreachable)",
            registry=r,
        )

    def set_model(self, name: str, alias: str, version: str) -> None:
        self.model_version.clear()
        self.model_version.labels(name=name, alias=alias, worker=self.worker).set(
            float(version) if version.isdigit() else 0
        )

    def count_predictions(self, labels: Iterable[str]) -> None:
        for label in labels:
            self._predicted[label].inc()
