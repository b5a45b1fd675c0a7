"""`drift-report`: the logged predictions of a time range against the champion's reference.

Reads the prediction log (DATABASE_URL: SQLite on the host, Postgres in the stack), compares
every feature (PSI) and the score (KS, on the rows the reference's version served) with the
reference profile of the version the alias points to, and writes into `--out`:

* `features.csv`: one row per feature (kind, PSI, threshold, drifted) and the score;
* `bins/<feature>.csv`: reference and live share per bin;
* `<feature>.png`: reference vs live histogram on the reference's bins (matplotlib);
* `summary.json`; and logs the same as a run of its own in the `<experiment>-drift`
  experiment (metrics `psi.<feature>`, `score_ks`; the folder as artifacts).

numpy for the statistics and matplotlib for the pictures rather than Evidently: the profile is
already binned (the server computes the same PSI from it), and Evidently would add a large
dependency tree to the training group for two statistics.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import FEATURES_BY_NAME
from ..settings import Settings, get_settings
from . import stats
from .profile import ARTIFACT_PATH, Profile, numeric_counts

DURATION = re.compile(r"^(\d+)([smhdw])$")
BLANK = "blank"  # the bin of a feature's missing values
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (`2026-03-01`, `2026-03-01T12:00`, with or without offset; naive = UTC) or a
    duration back from now (`30m`, `24h`, `7d`, `2w`)."""
    now = now or datetime.now(UTC)
    match = DURATION.match(text.strip())
    if match:
        return now - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time or a duration like 24h / 7d: {text!r}"
        ) from None
    # UTC throughout: the server logs UTC times, and SQLite compares them as text
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class LiveSample:
    columns: dict[str, list[Any]]
    scores: dict[str, list[float]]  # model version -> fraud probabilities it gave
    rows: int

    def main_version(self) -> str:
        return max(self.scores, key=lambda v: len(self.scores[v]))


def read_log(
    database_url: str,
    since: datetime,
    until: datetime,
    features: Sequence[str],
    max_rows: int,
) -> LiveSample:
    """The most recent `max_rows` logged predictions in [since, until)."""
    from sqlalchemy import select

    from ..db import PredictionRecord as P
    from ..db import make_engine

    engine = make_engine(database_url)
    try:
        query = (
            select(P.input, P.output, P.model_version)
            .where(P.created_at >= since, P.created_at < until)
            .order_by(P.created_at.desc())
            .limit(max_rows)
        )
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
    columns: dict[str, list[Any]] = {name: [] for name in features}
    scores: dict[str, list[float]] = {}
    for record, output, version in rows:
        for name in features:
            columns[name].append(record[name])
        scores.setdefault(version, []).append(float(output["probabilities"]["fraud"]))
    return LiveSample(columns, scores, len(rows))


def reference_for(settings: Settings, alias: str) -> tuple[Profile, str]:
    """The reference profile of the version `alias` points to, and that version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from ..pipeline.tracking import configure

    configure(settings.mlflow_tracking_uri, settings.experiment_name)
    version = MlflowClient().get_model_version_by_alias(settings.model_name, alias)
    if not version.run_id:
        raise LookupError(f"version {version.version} of {settings.model_name} has no run")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=ARTIFACT_PATH, dst_path=tmp
        )
        return Profile.load(Path(path)), str(version.version)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    psi: float
    labels: list[str]
    reference: list[float]
    live: list[float]

    @property
    def drifted(self) -> bool:
        return self.psi > stats.PSI_THRESHOLD


def _numeric_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    cuts = [f"{e:.4g}" for e in edges]
    inner = [f"({a}, {b}]" for a, b in itertools.pairwise(cuts)]
    return [f"<= {cuts[0]}", *inner, f"> {cuts[-1]}"]


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def compare(profile: Profile, sample: LiveSample) -> list[FeatureDrift]:
    """Per feature: PSI, the bins (the blank share last, as the live monitor counts them), the
    reference and live shares."""
    counts = stats.live_counts(profile, sample.columns)
    results = []
    for name, ref in profile.numeric.items():
        reference = stats.reference_shares(ref)
        results.append(
            FeatureDrift(
                name, "numeric", stats.psi(reference, counts[name]),
                [*_numeric_labels(ref.edges), BLANK], reference, _shares(counts[name]),
            )
        )  # fmt: skip
    for name, cat in profile.categorical.items():
        reference = stats.reference_shares(cat)
        results.append(
            FeatureDrift(
                name, "categorical", stats.psi(reference, counts[name]),
                [*cat.categories, "other", BLANK], reference, _shares(counts[name]),
            )
        )  # fmt: skip
    return results


def plot(drift: FeatureDrift, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = np.arange(len(drift.labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(drift.labels)), 4), layout="constrained")
    try:
        ax.bar(positions - 0.2, drift.reference, width=0.4, label="reference (training)")
        ax.bar(positions + 0.2, drift.live, width=0.4, label="live")
        ax.set_xticks(positions, drift.labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of rows")
        ax.set_title(title)
        ax.legend()
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)


def score_drift(profile: Profile, scores: Sequence[float]) -> tuple[float | None, FeatureDrift]:
    ref = profile.score
    counts = numeric_counts(scores, np.asarray(ref.edges))
    ks = stats.score_ks(profile, scores) if len(scores) else None
    return ks, FeatureDrift(
        "score", "score", float("nan"), _numeric_labels(ref.edges), ref.fractions, _shares(counts)
    )


def write_report(
    out: Path,
    results: list[FeatureDrift],
    score: tuple[float | None, FeatureDrift],
    summary: dict[str, Any],
) -> None:
    (out / "bins").mkdir(parents=True, exist_ok=True)
    ks, score_bins = score
    with (out / "features.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["feature", "kind", "statistic", "value", "threshold", "drifted"])
        for r in results:
            writer.writerow(
                [r.feature, r.kind, "psi", f"{r.psi:.6f}", stats.PSI_THRESHOLD, r.drifted]
            )
        writer.writerow(
            [
                "score", "score", "ks", "" if ks is None else f"{ks:.6f}",
                stats.SCORE_KS_THRESHOLD, ks is not None and ks > stats.SCORE_KS_THRESHOLD,
            ]
        )  # fmt: skip
    for r in [*results, score_bins]:
        with (out / "bins" / f"{r.feature}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["bin", "reference_share", "live_share"])
            for label, a, b in zip(r.labels, r.reference, r.live, strict=True):
                writer.writerow([label, f"{a:.6f}", f"{b:.6f}"])
        if r.kind == "score":
            title = "fraud probability" + ("" if ks is None else f": KS {ks:.3f}")
        else:
            description = FEATURES_BY_NAME[r.feature].description
            title = f"{r.feature} ({description}): PSI {r.psi:.3f}"
        plot(r, out / f"{r.feature}.png", title)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def log_to_mlflow(settings: Settings, out: Path, summary: dict[str, Any]) -> str:
    import mlflow

    from ..pipeline.tracking import configure

    experiment_id = configure(settings.mlflow_tracking_uri, f"{settings.experiment_name}-drift")
    name = f"drift {summary['since']} .. {summary['until']}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
        mlflow.log_params(
            {
                k: summary[k]
                for k in ("since", "until", "model_name", "alias", "reference_version", "rows")
            }
        )
        metrics = {f"psi.{k}": v for k, v in summary["psi"].items()}
        if summary["score_ks"] is not None:
            metrics["score_ks"] = summary["score_ks"]
        metrics["features_drifted"] = len(summary["drifted"])
        mlflow.log_metrics(metrics)
        mlflow.set_tag("drift.features", ",".join(summary["drifted"]) or "none")
        mlflow.log_artifacts(str(out), artifact_path="drift-report")
        return str(run.info.run_id)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=parse_time, default="24h",
        help="start of the range: ISO 8601 time or a duration back from now (default 24h)",
    )  # fmt: skip
    parser.add_argument(
        "--until", type=parse_time, default=None, help="end of the range (default: now)"
    )
    parser.add_argument("--alias", help="whose reference to compare with (default MODEL_ALIAS)")
    parser.add_argument(
        "--reference", type=Path, help="a reference profile JSON instead of the registry's"
    )
    parser.add_argument("--out", type=Path, help="output folder (default reports/drift/<time>)")
    parser.add_argument("--max-rows", type=int, default=200_000, help="most recent rows read")
    parser.add_argument("--no-mlflow", action="store_true", help="write the files only")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    until = args.until or datetime.now(UTC)
    since = args.since
    if since >= until:
        print(f"--since ({since.isoformat()}) must be before --until", file=sys.stderr)
        return 2
    if args.max_rows < 1:
        print("--max-rows must be at least 1", file=sys.stderr)
        return 2
    alias = args.alias or settings.model_alias
    if args.reference is not None:
        profile, version = Profile.load(args.reference), None
    else:
        try:
            profile, version = reference_for(settings, alias)
        except Exception as exc:  # registry down, no such alias, a version without a profile
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(
                f"cannot load the reference profile of models:/{settings.model_name}@{alias} "
                f"({settings.mlflow_tracking_uri}): {reason}",
                file=sys.stderr,
            )
            return 1
    sample = read_log(settings.database_url, since, until, profile.features, args.max_rows)
    if sample.rows == 0:
        print(
            f"no predictions logged between {since.isoformat()} and {until.isoformat()}",
            file=sys.stderr,
        )
        return 1
    if version is None:  # a local reference: the score of the version that served most
        version = sample.main_version()
    results = compare(profile, sample)
    score = score_drift(profile, sample.scores.get(version, []))
    drifted = [r.feature for r in results if r.drifted]
    summary: dict[str, Any] = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "model_name": settings.model_name,
        "alias": alias,
        "reference_version": version,
        "rows": sample.rows,
        "rows_by_version": {v: len(s) for v, s in sample.scores.items()},
        "psi_threshold": stats.PSI_THRESHOLD,
        "score_ks_threshold": stats.SCORE_KS_THRESHOLD,
        "psi": {r.feature: r.psi for r in results},
        "score_ks": score[0],
        "drifted": drifted,
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or settings.project_root / "reports" / "drift" / stamp
    write_report(out, results, score, summary)
    if not args.no_mlflow:
        summary["mlflow_run_id"] = log_to_mlflow(settings, out, summary)
    width = max(len(r.feature) for r in results)
    for r in results:
        flag = "DRIFT" if r.drifted else "ok"
        print(f"{r.feature:<{width}}  PSI {r.psi:7.3f}  {flag}")
    ks_text = "n/a (no rows of that version)" if score[0] is None else f"{score[0]:.3f}"
    print(f"{'score':<{width}}  KS  {ks_text}")
    print(
        f"{sample.rows:,} predictions, reference version {version}: "
        f"drifted: {', '.join(drifted) or 'none'}; report in {out}"
    )
    return 0
