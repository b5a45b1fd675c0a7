"""The whole pipeline in one call (what `dvc repro` runs stage by stage): used by tests and
the benchmark; `dvc repro` remains the way to run it day to day."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .. import schema
from ..data.generate import generate, write_csv
from .common import Context
from .evaluate import evaluate
from .prepare import prepare
from .promote import promote
from .train import TrainResult, train

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    train: TrainResult
    metrics: dict[str, float]
    promotion: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


def run_pipeline(ctx: Context, *, generate_data: bool = True) -> PipelineResult:
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if generate_data:
        g = ctx.params["generate"]
        frame = generate(int(g["rows"]), int(g["seed"]), float(g.get("fraud_rate", 0.03)))
        write_csv(frame, ctx.paths.raw)
        log.info("generated %d rows (%.2f%% fraud)", len(frame), 100 * frame[schema.TARGET].mean())
        seconds["generate"] = time.perf_counter() - start
    for name in ("prepare", "train", "evaluate", "promote"):
        start = time.perf_counter()
        if name == "prepare":
            prepare(ctx)
        elif name == "train":
            trained = train(ctx)
        elif name == "evaluate":
            metrics = evaluate(ctx, trained.version)
        else:
            promotion = promote(ctx, trained.version)
        seconds[name] = time.perf_counter() - start
    return PipelineResult(trained, metrics, promotion, seconds)
