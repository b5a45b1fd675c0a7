"""Every metric the alert rules and the dashboard query is one the server exports."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.serving.requests import example_record
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import require_env
from ..serving.conftest import running

# trains the session's registered model; the cache's metrics need a real Redis
pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
# metric names of the server: everything the rules and panels name with these prefixes
METRIC = re.compile(r"(?<![\w:])((?:model|prediction|predictions|http)_[a-z_]+)\b")
HAS_LOG = importlib.util.find_spec("{{ cookiecutter.package_name }}.serving.prediction_log")
HAS_CACHE = importlib.util.find_spec("{{ cookiecutter.package_name }}.serving.cache")


def queried() -> set[str]:
    rules = "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "monitoring/prometheus").glob("*rules.yml"))
    )
    exprs = re.findall(r"expr: (.*(?:\n {10,}.*)*)", rules)
    dashboard = json.loads(
        (ROOT / "monitoring/grafana/dashboards/serving.json").read_text(encoding="utf-8")
    )
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = {name for expr in exprs for name in METRIC.findall(expr)}
    assert names, "no metric names found"
    return names


def test_every_queried_metric_is_exported(
    settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    overrides: dict[str, object] = {"drift_window_size": 100}
    if HAS_LOG:
        from ..db.helpers import upgrade

        url = f"sqlite:///{tmp_path / 'log.db'}"
        upgrade(url)
        overrides |= {"prediction_logging": True, "database_url": url}
    if HAS_CACHE:  # the cache registers its metrics only when it has a Redis
        overrides["redis_url"] = require_env("TEST_REDIS_URL")
    with running(settings_for(**overrides)) as client:
        assert client.post("/predict", json=example_record()).status_code == 200
        text = client.get("/metrics").text
    families = list(text_string_to_metric_families(text))
    exported = {s.name for f in families for s in f.samples}
    # declared families without samples yet (labelled counters nobody incremented, such as the
    # cache's without a cache configured)
    exported |= {f"{f.name}_total" for f in families if f.type == "counter"}
    missing = queried() - exported
    # in a project without these parts, their panels and rules stay empty
    if not HAS_LOG:
        missing = {name for name in missing if not name.startswith("prediction_log_")}
    if not HAS_CACHE:
        missing = {name for name in missing if not name.startswith("prediction_cache_")}
    assert missing == set()
