"""Synthetic card-transaction fraud table, generated deterministically from a seed.

The example dataset that lets the pipeline run on day one. Every column of `schema.FEATURES` is
produced with plausible marginals; the fraud label is drawn from a logistic model of a few risk
signals (spend ratio, night hours, foreign/online use, risky merchants, failed PINs), with the
intercept solved so that the positive rate matches `fraud_rate`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .. import schema
from ..pipeline.params import load_params
from . import raw

RISKY_MERCHANTS = ("electronics", "jewelry", "gaming", "online_retail", "travel")
CARD_NOT_PRESENT = ("online", "phone")


def _choice(
    rng: np.random.Generator, values: tuple[str, ...], p: list[float], n: int
) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return rng.choice(np.asarray(values, dtype=object), size=n, p=weights / weights.sum())


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """Bisection on the intercept so that mean(sigmoid(b + logit)) == rate."""
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-(mid + logit))))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def generate(rows: int, seed: int, fraud_rate: float = 0.03) -> pd.DataFrame:
    """The example table: `rows` transactions, about `fraud_rate` of them fraudulent."""
    if rows < 10:
        raise ValueError("rows must be at least 10")
    if not 0 < fraud_rate < 0.5:
        raise ValueError("fraud_rate must be in (0, 0.5)")
    rng = np.random.default_rng(seed)
    n = rows
    cats = {f.name: f.categories for f in schema.FEATURES if f.kind == "categorical"}

    merchant = _choice(rng, cats["merchant_category"], [25, 18, 12, 5, 6, 14, 8, 7, 2, 3], n)
    channel = _choice(rng, cats["channel"], [30, 35, 10, 22, 3], n)
    in_person = ~np.isin(channel, CARD_NOT_PRESENT)
    device = np.where(
        in_person,
        "pos",
        _choice(rng, ("mobile", "desktop", "tablet"), [55, 35, 10], n),
    ).astype(object)
    hour = np.clip(np.rint(rng.normal(14, 4.5, n)), 0, 23).astype(int)
    night = rng.random(n) < 0.08
    hour[night] = rng.integers(0, 6, night.sum())
    day_of_week = rng.integers(0, 7, n)
    customer_age = np.clip(np.rint(rng.normal(44, 15, n)), 18, 100).astype(int)
    card_age_days = np.clip(np.rint(rng.exponential(900, n)), 0, 10_000).astype(int)
    avg_amount = np.round(rng.lognormal(3.8, 0.6, n), 2)
    amount = np.round(avg_amount * rng.lognormal(0.0, 0.6, n), 2)
    foreign = (rng.random(n) < 0.05).astype(int)
    distance = np.round(rng.exponential(12, n) + foreign * rng.exponential(800, n), 2)
    txn_count = rng.poisson(2.0, n)
    failed_pins = np.minimum(rng.poisson(0.05, n) * in_person, 20).astype(int)

    ratio = amount / np.maximum(avg_amount, 0.01)
    logit = (
        2.0 * np.log(np.maximum(ratio, 1e-3))
        + 2.2 * (hour < 6)
        + 2.0 * foreign
        + 1.5 * np.isin(merchant, RISKY_MERCHANTS)
        + 1.4 * ~in_person
        + 1.0 * ((hour < 6) & ~in_person)
        + 0.35 * np.minimum(txn_count, 10)
        + 1.5 * failed_pins
        + 0.5 * np.log1p(distance / 10)
        - 1.0 * (card_age_days > 365)
        + 0.6 * (customer_age > 70)
        + rng.normal(0, 0.3, n)
    )
    p = 1 / (1 + np.exp(-(_intercept_for_rate(logit, fraud_rate) + logit)))
    is_fraud = (rng.random(n) < p).astype(int)

    frame = pd.DataFrame(
        {
            "amount": amount,
            "hour": hour,
            "day_of_week": day_of_week,
            "merchant_category": merchant,
            "channel": channel,
            "device_type": device,
            "customer_age": customer_age,
            "card_age_days": card_age_days,
            "distance_from_home_km": distance,
            "txn_count_24h": txn_count,
            "avg_amount_30d": avg_amount,
            "amount_to_avg_ratio": np.round(ratio, 4),
            "foreign_transaction": foreign,
            "failed_pin_attempts_24h": failed_pins,
            schema.TARGET: is_fraud,
        }
    )
    return frame[[*schema.FEATURE_NAMES, schema.TARGET]]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="CSV to write (default: params.yaml data.raw)")
    parser.add_argument("--rows", type=int, help="default: params.yaml generate.rows")
    parser.add_argument("--seed", type=int, help="default: params.yaml generate.seed")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--track", action="store_true", help="`dvc add` the file (writes its .dvc pointer)"
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="only when the file has no DVC pointer yet (what `make pipeline` runs first)",
    )


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    gen = params["generate"]
    out = args.out or Path(params["data"]["raw"])
    if args.if_missing:
        wrong = raw.pipeline_problem(out)
        if wrong:
            print(f"error: {wrong}", file=sys.stderr)
            return 1
        if raw.pointer(out).exists():
            return 0
    rows = args.rows if args.rows is not None else int(gen["rows"])
    seed = args.seed if args.seed is not None else int(gen["seed"])
    frame = generate(rows, seed, float(gen.get("fraud_rate", 0.03)))
    write_csv(frame, out)
    print(f"wrote {len(frame):,} rows ({frame[schema.TARGET].mean():.2%} fraud) to {out}")
    if args.track:
        try:
            raw.dvc_add(out)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"tracked by DVC: commit {raw.pointer(out)}, then `uv run dvc push`")
    return 0
