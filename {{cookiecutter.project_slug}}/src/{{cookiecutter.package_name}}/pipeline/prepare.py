"""Stage `prepare`: validate the raw table against the schema and split train/test."""

from __future__ import annotations

import argparse
import logging

from sklearn.model_selection import train_test_split

from .. import schema
from ..data.load import load_table
from .common import Context, add_common_arguments, cli_errors

log = logging.getLogger(__name__)


def prepare(ctx: Context) -> dict[str, int]:
    p = ctx.params["prepare"]
    frame = load_table(ctx.paths.raw)
    train, test = train_test_split(
        frame,
        test_size=float(p["test_size"]),
        random_state=int(p["seed"]),
        stratify=frame[schema.TARGET],
    )
    ctx.paths.prepared.mkdir(parents=True, exist_ok=True)
    train.reset_index(drop=True).to_parquet(ctx.paths.train_split, index=False)
    test.reset_index(drop=True).to_parquet(ctx.paths.test_split, index=False)
    counts = {"train_rows": len(train), "test_rows": len(test)}
    log.info(
        "prepared %s train / %s test rows from %s",
        f"{len(train):,}",
        f"{len(test):,}",
        ctx.paths.raw,
    )
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        prepare(Context.load(args.params))
        return 0

    return cli_errors(body)
