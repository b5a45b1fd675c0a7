"""The server's drift window and its Prometheus collector, on a real registry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from {{ cookiecutter.package_name }}.drift import stats
from {{ cookiecutter.package_name }}.drift.monitor import DriftCollector, DriftMonitor
from {{ cookiecutter.package_name }}.drift.profile import Profile, build_profile

from .traffic import SHIFTED_FEATURES, records, reference_profile, shifted, unshifted


@pytest.fixture(scope="module")
def profile() -> Profile:
    return reference_profile()


def registry_for(
    monitor: DriftMonitor, serving: list[tuple[str, Profile | None] | None]
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DriftCollector(monitor, lambda: serving[0]))
    return registry


def gauges(registry: CollectorRegistry, version: str) -> dict[str, float]:
    values = {}
    for metric in registry.collect():
        if metric.name == "model_feature_drift_psi":
            for sample in metric.samples:
                assert sample.labels["version"] == version
                values[sample.labels["feature"]] = sample.value
    return values


def feed(monitor: DriftMonitor, version: str, profile: Profile, frame: Any) -> None:
    scores = np.random.default_rng(0).beta(0.5, 12, len(frame)).tolist()
    for record, score in zip(records(frame), scores, strict=True):  # one request at a time
        monitor.observe(version, profile, [record], [score])


def test_unshifted_traffic_keeps_every_gauge_under_the_threshold(profile: Profile) -> None:
    monitor = DriftMonitor(size=2000)
    registry = registry_for(monitor, [("3", profile)])
    feed(monitor, "3", profile, unshifted(3000, 31))
    values = gauges(registry, "3")
    assert set(values) == set(profile.features)
    assert max(values.values()) < stats.PSI_THRESHOLD, values
    assert registry.get_sample_value("model_drift_window_rows", {"version": "3"}) == 2000
    ks = registry.get_sample_value("model_score_drift_ks", {"version": "3"})
    assert ks is not None and ks < stats.SCORE_KS_THRESHOLD


def test_shifted_traffic_pushes_exactly_the_shifted_features_over(profile: Profile) -> None:
    monitor = DriftMonitor(size=2000)
    registry = registry_for(monitor, [("3", profile)])
    feed(monitor, "3", profile, unshifted(2000, 32))
    assert max(gauges(registry, "3").values()) < stats.PSI_THRESHOLD
    feed(monitor, "3", profile, shifted(2000, 33))  # the window now holds only shifted traffic
    values = gauges(registry, "3")
    assert {f for f, v in values.items() if v > stats.PSI_THRESHOLD} == SHIFTED_FEATURES, values


def test_a_new_version_restarts_the_window_against_its_own_reference(profile: Profile) -> None:
    monitor = DriftMonitor(size=1000)
    serving: list[tuple[str, Profile | None] | None] = [("3", profile)]
    registry = registry_for(monitor, serving)
    feed(monitor, "3", profile, shifted(1000, 34))
    assert gauges(registry, "3")["amount"] > stats.PSI_THRESHOLD
    # version 4 was trained on the shifted data: its reference is that population
    shifted_frame = shifted(20_000, 35)
    reference_4 = build_profile(shifted_frame, np.random.default_rng(1).beta(0.5, 12, 4000))
    serving[0] = ("4", reference_4)
    # right after the swap, before any request: the new version's window is empty
    assert registry.get_sample_value("model_drift_window_rows", {"version": "4"}) == 0
    assert registry.get_sample_value("model_drift_window_rows", {"version": "3"}) is None
    assert gauges(registry, "4") == {}
    feed(monitor, "4", reference_4, shifted(1000, 36))
    values = gauges(registry, "4")
    assert max(values.values()) < stats.PSI_THRESHOLD, values


def test_memory_is_bounded_by_the_window_size(profile: Profile) -> None:
    monitor = DriftMonitor(size=100)
    feed(monitor, "3", profile, unshifted(1000, 37))
    _, _, kept, scores = monitor.snapshot()
    assert len(kept) == len(scores) == 100


def test_a_version_without_a_reference_exports_only_the_capacity() -> None:
    monitor = DriftMonitor(size=100)
    registry = registry_for(monitor, [("5", None)])
    monitor.observe("5", None, records(unshifted(10, 38)), [0.1] * 10)
    text = generate_latest(registry).decode()
    assert "model_drift_window_capacity 100.0" in text
    assert "model_feature_drift_psi" not in text
    assert monitor.snapshot()[2] == []
