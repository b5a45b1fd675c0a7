"""The Prometheus alert rules: `promtool test rules` (each alert fires on the series that
should fire it and stays quiet on near misses), and the wiring of the rules files."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from {{ cookiecutter.package_name }}.drift import stats

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "monitoring" / "prometheus"
# rules.yml, and prediction_log_rules.yml where the project has the prediction log
RULE_FILES = sorted(PROMETHEUS.glob("*rules.yml"))
HAS_LOG = importlib.util.find_spec("{{ cookiecutter.package_name }}.serving.prediction_log") is not None


def promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    reason = "promtool is not installed (Debian/Ubuntu: apt-get install prometheus)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def load(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def rules() -> list[dict]:
    return [
        rule for path in RULE_FILES for group in load(path)["groups"] for rule in group["rules"]
    ]


def test_rules_are_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prediction_log_alerts_come_with_the_prediction_log() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert ("PredictionLogDropping" in alerts) is HAS_LOG
    assert ("PredictionLogBufferNearFull" in alerts) is HAS_LOG


def test_every_alert_is_unit_tested_and_the_tests_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROMETHEUS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {
        case["alertname"]
        for path in tests
        for test in load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts - tested == set(), "alerts without a firing test case"


def test_thresholds_are_set_once_and_match_the_offline_report() -> None:
    thresholds = {}
    for rule in rules():
        if rule.get("record", "").startswith("threshold:"):
            (value,) = re.fullmatch(r"vector\(([0-9.]+)\)", rule["expr"]).groups()
            thresholds[rule["record"]] = float(value)
    assert thresholds["threshold:feature_drift_psi"] == stats.PSI_THRESHOLD
    assert thresholds["threshold:score_drift_ks"] == stats.SCORE_KS_THRESHOLD
    alerts = [rule["expr"] for rule in rules() if "alert" in rule]
    used = {name for name in thresholds if any(name in expr for expr in alerts)}
    assert used == set(thresholds), "a threshold no alert uses"
    for rule in rules():
        if "alert" in rule:  # no literal thresholds in the alerts themselves
            assert not re.search(r"[<>]=?\s*[0-9]*\.[0-9]", rule["expr"]), rule["alert"]


def test_prometheus_and_compose_load_every_rules_file() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    compose = load(ROOT / "compose.yaml")
    mounts = {c["target"]: c["source"] for c in compose["services"]["prometheus"]["configs"]}
    mounted = {
        (ROOT / compose["configs"][source]["file"]).resolve()
        for target, source in mounts.items()
        if target.startswith("/etc/prometheus/rules/") and target.endswith(".yml")
    }
    assert mounted == set(RULE_FILES)
