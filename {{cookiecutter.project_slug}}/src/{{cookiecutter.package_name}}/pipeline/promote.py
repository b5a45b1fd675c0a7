"""Stage `promote`: move `champion` to the version `train` registered (`reports/train.json`)
only when its metric (`reports/metrics.json`, written by `evaluate`) beats the current
champion's (its `metric.<name>` tag, from its own evaluation) by `promote.min_improvement`;
the comparison is recorded on the version and in `reports/promotion.json`."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..registry_names import CHAMPION, PROMOTION_PREFIX, metric_tag
from .common import Context, add_common_arguments, cli_errors
from .params import Paths
from .tracking import configure

log = logging.getLogger(__name__)


def _tagged_metric(client: MlflowClient, name: str, version: str, metric: str) -> float | None:
    value = client.get_model_version(name, version).tags.get(metric_tag(metric))
    return float(value) if value is not None else None


def _read_report(path: Path, stage: str) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `{stage}` first")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def challenger(
    paths: Paths, client: MlflowClient, name: str, metric: str, version: str | None
) -> tuple[str, float | None]:
    """(version, its metric): the version of train.json with the metric of metrics.json. A
    version given explicitly (`--version`) that is not train.json's has the metric its own
    evaluation tagged on it."""
    trained = None
    if version is None or paths.train_report.exists():
        trained = str(_read_report(paths.train_report, "train")["version"])
    if version is not None and version != trained:
        return version, _tagged_metric(client, name, version, metric)
    value = _read_report(paths.metrics, "evaluate").get(metric)
    return str(trained), float(value) if value is not None else None


def promote(ctx: Context, version: str | None = None, *, force: bool = False) -> dict[str, Any]:
    settings = ctx.settings
    configure(settings.mlflow_tracking_uri, settings.experiment_name)
    client = MlflowClient()
    name = settings.model_name
    rule = ctx.params["promote"]
    metric, margin = str(rule["metric"]), float(rule["min_improvement"])
    version, challenger_value = challenger(ctx.paths, client, name, metric, version)
    if challenger_value is None:
        raise FileNotFoundError(f"version {version} has no {metric} metric: run evaluate first")
    try:
        champion: str | None = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        champion = None
    champion_value = _tagged_metric(client, name, champion, metric) if champion else None

    if champion == version:
        decision, reason = "kept", "already champion"
    elif force:
        decision, reason = "promoted", "forced"
    elif champion is None:
        decision, reason = "promoted", "no champion yet"
    elif champion_value is None:
        decision, reason = "promoted", f"champion v{champion} has no {metric}"
    elif challenger_value >= champion_value + margin:
        decision, reason = "promoted", f"{challenger_value:.6f} >= {champion_value:.6f} + {margin}"
    else:
        decision, reason = "rejected", f"{challenger_value:.6f} < {champion_value:.6f} + {margin}"

    record = {
        "model_name": name,
        "version": version,
        "metric": metric,
        "challenger_value": challenger_value,
        "champion_version": champion,
        "champion_value": champion_value,
        "min_improvement": margin,
        "decision": decision,
        "reason": reason,
    }
    for key, value in record.items():
        if key not in ("model_name", "version"):
            client.set_model_version_tag(name, version, f"{PROMOTION_PREFIX}{key}", str(value))
    if decision == "promoted":
        client.set_registered_model_alias(name, CHAMPION, version)
        client.update_model_version(name, version, description=f"Champion: {reason} ({metric}).")
    log.info("version %s %s as %s: %s", version, decision, CHAMPION, reason)
    ctx.paths.reports.mkdir(parents=True, exist_ok=True)
    ctx.paths.promotion.write_text(json.dumps(record, indent=2) + "\n")
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--version", help="version to consider (default: the one in reports/train.json)"
    )
    parser.add_argument("--force", action="store_true", help="promote regardless of the metric")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        promote(Context.load(args.params), args.version, force=args.force)
        return 0

    return cli_errors(body)
