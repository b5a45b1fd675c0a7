"""`tune`: an Optuna study in RDB storage (shared by any number of workers), every trial a
nested MLflow run, the best parameters written to `params.yaml: train` for `dvc repro`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import TrialState

from .. import models
from ..data.load import load_table
from ..settings import normalize_url
from .common import Context, add_common_arguments, cli_errors
from .params import update_section
from .tracking import configure, provenance_tags
from .train import fit_model

log = logging.getLogger(__name__)


def create_study(ctx: Context, study_name: str | None = None, attempts: int = 5) -> optuna.Study:
    """Create or join the study. Workers starting together on an empty database race to create
    Optuna's tables (and the study row): the loser retries and then finds them."""
    for attempt in range(1, attempts + 1):
        try:
            return _create_study(ctx, study_name)
        except (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError) as exc:
            if attempt == attempts:
                raise
            log.info("study storage busy (%s), retrying", type(exc).__name__)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


class NoBestTrial(LookupError):
    """The study is missing or has no completed trial (the message is one line)."""


def default_study_name(ctx: Context) -> str:
    name = ctx.params["tune"].get("study_name")
    return str(name or f"{ctx.settings.model_name}-{models.FRAMEWORK}")


def _create_study(ctx: Context, study_name: str | None) -> optuna.Study:
    p = ctx.params["tune"]
    return optuna.create_study(
        study_name=study_name or default_study_name(ctx),
        # A worker that dies mid-trial (SIGKILL, a preempted pod) stops its heartbeat: another
        # worker marks the trial failed after the grace period, and the callback enqueues its
        # parameters again, so no trial stays RUNNING and the budget is still spent.
        storage=optuna.storages.RDBStorage(
            ctx.settings.optuna_storage,  # a SQLAlchemy URL (settings normalize it)
            heartbeat_interval=int(p.get("heartbeat_seconds", 10)),
            grace_period=int(p.get("heartbeat_grace_seconds", 60)),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        ),
        direction="maximize",
        load_if_exists=True,
        # Seeded per process: parallel workers must not propose the same points.
        sampler=optuna.samplers.TPESampler(seed=int(p.get("seed", 0)) + os.getpid()),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=int(p.get("pruner_startup_trials", 3)),
            n_warmup_steps=int(p.get("pruner_warmup_steps", 5)),
        ),
    )


def tune(
    ctx: Context,
    *,
    n_trials: int | None = None,
    study_name: str | None = None,
    write_params: bool = True,
) -> dict[str, Any]:
    p = ctx.params["tune"]
    budget = int(n_trials if n_trials is not None else p["n_trials"])
    settings = ctx.settings
    experiment_id = configure(settings.mlflow_tracking_uri, settings.experiment_name)
    study = create_study(ctx, study_name)
    frame = load_table(ctx.paths.train_split)
    base = dict(ctx.params["train"])
    tags = provenance_tags(
        ctx.paths.root,
        ctx.paths.raw,
        seed=int(base.get("seed", 0)),
        device=str(base.get("device", "cpu")),
    )

    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"tune-{study.study_name}"
    ) as parent:
        mlflow.set_tags(
            {
                **tags,
                "optuna.study": study.study_name,
                "optuna.storage": sqlalchemy.make_url(settings.optuna_storage).get_backend_name(),
            }
        )

        def objective(trial: optuna.Trial) -> float:
            suggested = models.suggest_params(trial)
            trial.set_user_attr("params", suggested)
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"trial-{trial.number}",
                nested=True,
                parent_run_id=parent.info.run_id,
            ):
                mlflow.set_tags(
                    {"optuna.study": study.study_name, "optuna.trial": str(trial.number)}
                )
                mlflow.log_params(suggested)

                def report(step: int, metrics: dict[str, float]) -> None:
                    trial.report(-metrics["val_loss"], step)
                    if trial.should_prune():
                        mlflow.set_tag("optuna.state", "pruned")
                        raise optuna.TrialPruned(f"pruned at step {step}")

                _model, result, val_ap = fit_model({**base, **suggested}, frame, report)
                mlflow.log_metrics(
                    {"val_average_precision": val_ap, "iterations": result.iterations}
                )
                mlflow.set_tag("optuna.state", "complete")
                return val_ap

        def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            best = (
                study.best_value
                if any(t.state == TrialState.COMPLETE for t in study.trials)
                else None
            )
            log.info(
                "trial %d %s value=%s best=%s",
                trial.number,
                trial.state.name.lower(),
                trial.value,
                best,
            )

        study.optimize(
            objective,
            n_trials=budget,
            callbacks=[
                # The budget is the study's, shared by all workers.
                optuna.study.MaxTrialsCallback(
                    budget, states=(TrialState.COMPLETE, TrialState.PRUNED)
                ),
                progress,
            ],
        )
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if not complete:
            raise RuntimeError("no trial completed")
        best = study.best_trial
        best_params = dict(best.user_attrs["params"])
        mlflow.log_params({f"best.{k}": v for k, v in best_params.items()})
        mlflow.log_metric("best_val_average_precision", float(best.value or 0.0))
    if write_params:
        update_section(ctx.paths.root / "params.yaml", "train", best_params)
        log.info(
            "best trial %d (AP %.4f): params.yaml train <- %s", best.number, best.value, best_params
        )
    return {
        "study": study.study_name,
        "best_value": best.value,
        "best_params": best_params,
        "trials": len(study.trials),
    }


def best_trial(storage_url: str, study_name: str) -> dict[str, Any]:
    """The best completed trial of a study (what the workers of `make k8s-tune` or
    `make compose-tune` leave behind): study, trial number, value and parameters."""
    where = sqlalchemy.make_url(storage_url).render_as_string(hide_password=True)
    missing = NoBestTrial(
        f"no Optuna study {study_name!r} in {where}: run the tuning workers first "
        "(make k8s-tune, make compose-tune or make tune) or pass --study-name"
    )
    try:
        # Read only: an empty database is not given Optuna's tables.
        engine = sqlalchemy.create_engine(storage_url)
        try:
            if not sqlalchemy.inspect(engine).has_table("studies"):
                raise missing
        finally:
            engine.dispose()
        storage = optuna.storages.RDBStorage(storage_url, skip_table_creation=True)
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise missing from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        raise NoBestTrial(f"cannot read Optuna storage {where}: {reason}") from None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise NoBestTrial(
            f"study {study_name!r} in {where} has no completed trial yet "
            f"({len(study.trials)} trials): wait for the workers, or tune more"
        )
    best = study.best_trial
    return {
        "study": study_name,
        "trial": best.number,
        "value": best.value,
        # What the objective trained with (suggest_params), as `tune` writes it.
        "params": dict(best.user_attrs.get("params") or best.params),
    }


def apply_best(ctx: Context, best: dict[str, Any]) -> None:
    """Write a best trial's parameters into `params.yaml: train` (nothing else changes)."""
    update_section(ctx.paths.root / "params.yaml", "train", best["params"])
    print(
        f"params.yaml train <- {best['params']} "
        f"(study {best['study']!r}, trial {best['trial']}, value {best['value']:.4f})"
    )


def _read_best(source: str) -> dict[str, Any]:
    """A best trial as `tune --show-best` prints it, from a file or '-' (stdin)."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        best = json.loads(text)
        if not isinstance(best.get("params"), dict) or not best["params"]:
            raise ValueError("no parameters")
    except (ValueError, AttributeError) as exc:
        raise NoBestTrial(
            f"--from-json {source}: not the output of `tune --show-best` ({exc})"
        ) from None
    return dict(best)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--n-trials",
        type=int,
        help="trial budget of the study (default: params.yaml tune.n_trials)",
    )
    parser.add_argument(
        "--study-name", help="default: params.yaml tune.study_name or <model>-<framework>"
    )
    parser.add_argument("--no-write", action="store_true", help="leave params.yaml unchanged")
    # After distributed workers (Kubernetes, Compose) finished: no trials, only the result.
    parser.add_argument(
        "--apply-best",
        action="store_true",
        help="write the existing study's best parameters to params.yaml train; run no trial",
    )
    parser.add_argument(
        "--show-best", action="store_true", help="print the study's best trial as JSON; no write"
    )
    parser.add_argument(
        "--storage", help="Optuna storage URL of --apply-best/--show-best (default: OPTUNA_STORAGE)"
    )
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="with --apply-best: the trial printed by --show-best ('-': stdin), not the storage",
    )


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if args.apply_best or args.show_best:
            return best_command(args)
        tune(
            Context.load(args.params),
            n_trials=args.n_trials,
            study_name=args.study_name,
            write_params=not args.no_write,
        )
        return 0

    return cli_errors(body)


def best_command(args: argparse.Namespace) -> int:
    ctx = Context.load(args.params)
    try:
        if args.from_json:
            best = _read_best(args.from_json)
        else:
            storage = normalize_url(args.storage) if args.storage else ctx.settings.optuna_storage
            best = best_trial(storage, args.study_name or default_study_name(ctx))
    except NoBestTrial as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.show_best:
        print(json.dumps(best))
    else:
        apply_best(ctx, best)
    return 0
