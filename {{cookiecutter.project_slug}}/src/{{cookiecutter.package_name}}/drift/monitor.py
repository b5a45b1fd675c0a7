"""Live drift in the server: a bounded window of recent inputs and scores per worker, and a
Prometheus collector that computes PSI per feature and KS for the score at scrape time.

The request path only appends references to the already-normalised records and their fraud
scores to two `deque(maxlen=size)` (memory fixed by DRIFT_WINDOW_SIZE, not by traffic); the
binning and statistics run when Prometheus scrapes `/metrics`. A window belongs to one model
version: when the served version changes (reload, alias polling) the window starts empty
against the new version's reference.

Each worker (and replica) exports its own window; the dashboard and alerts aggregate.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import stats
from .profile import Profile

log = logging.getLogger(__name__)


def window_columns(profile: Profile, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Columns of the window: numeric features as one float matrix built in C (itemgetter),
    categorical ones as lists."""
    columns: dict[str, Any] = {}
    numeric = list(profile.numeric)
    if numeric:
        get = itemgetter(*numeric)
        matrix = np.array(list(map(get, records)), dtype=np.float64).reshape(-1, len(numeric))
        columns.update({name: matrix[:, i] for i, name in enumerate(numeric)})
    for name in profile.categorical:
        columns[name] = list(map(itemgetter(name), records))
    return columns


@dataclass
class _Window:
    version: str
    profile: Profile | None
    records: deque[Mapping[str, Any]]
    scores: deque[float]


@dataclass
class DriftMonitor:
    size: int
    _window: _Window = field(init=False)

    def __post_init__(self) -> None:
        self._window = self._new("", None)

    def _new(self, version: str, profile: Profile | None) -> _Window:
        return _Window(version, profile, deque(maxlen=self.size), deque(maxlen=self.size))

    def use(self, version: str, profile: Profile | None) -> None:
        """Follow the served version: a new version gets a new, empty window."""
        if version != self._window.version:
            # one attribute swap: a concurrent observe() or scrape sees the old or the new
            self._window = self._new(version, profile)

    def observe(
        self, version: str, profile: Profile | None, records: Sequence[Mapping[str, Any]],
        scores: Iterable[float],
    ) -> None:  # fmt: skip
        window = self._window
        if version != window.version:
            self.use(version, profile)
            window = self._window
        if window.profile is not None:
            window.records.extend(records)
            window.scores.extend(scores)

    def snapshot(self) -> tuple[str, Profile | None, list[Mapping[str, Any]], list[float]]:
        window = self._window
        # list(deque) runs in C under the GIL: a consistent copy even while requests append
        return window.version, window.profile, list(window.records), list(window.scores)


class DriftCollector(Collector):
    """Exports the monitor's drift statistics, computed when scraped.

    `current` returns (version, profile) of the model being served (None before one is
    loaded), so a scrape right after a reload already shows the new version's empty window.
    """

    def __init__(
        self, monitor: DriftMonitor, current: Callable[[], tuple[str, Profile | None] | None]
    ) -> None:
        self.monitor = monitor
        self.current = current

    def describe(self) -> list[Any]:
        return []  # registering must not compute anything

    def collect(self) -> Iterator[GaugeMetricFamily]:
        serving = self.current()
        if serving is not None:
            self.monitor.use(*serving)
        version, profile, records, scores = self.monitor.snapshot()
        capacity = GaugeMetricFamily(
            "model_drift_window_capacity", "Most recent requests a worker keeps (DRIFT_WINDOW_SIZE)"
        )
        capacity.add_metric([], self.monitor.size)
        yield capacity
        if profile is None:
            return
        labels = ["version"]
        rows = GaugeMetricFamily(
            "model_drift_window_rows", "Requests in this worker's drift window", labels=labels
        )
        rows.add_metric([version], len(records))
        yield rows
        if not records:
            return
        columns = window_columns(profile, records)
        psi = GaugeMetricFamily(
            "model_feature_drift_psi",
            "PSI of the feature in this worker's window against the training reference",
            labels=["feature", *labels],
        )
        for feature, value in stats.feature_psi(profile, columns).items():
            psi.add_metric([feature, version], value)
        yield psi
        ks = GaugeMetricFamily(
            "model_score_drift_ks",
            "KS statistic of the fraud scores in this worker's window against the holdout's",
            labels=labels,
        )
        ks.add_metric([version], stats.score_ks(profile, scores))
        yield ks
