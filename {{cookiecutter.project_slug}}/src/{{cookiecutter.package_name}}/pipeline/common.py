"""What every stage needs: parameters, settings, paths, logging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.load import DataValidationError
from ..settings import Settings
from .params import Paths, load_params


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be reached (the message is one line with the URI)."""


@dataclass(frozen=True)
class Context:
    params: dict[str, Any]
    settings: Settings
    paths: Paths

    @classmethod
    def load(
        cls, params_file: Path = Path("params.yaml"), settings: Settings | None = None
    ) -> Context:
        params_file = Path(params_file).resolve()
        root = params_file.parent
        settings = settings or Settings(project_root=root)
        params = load_params(params_file)
        return cls(params, settings, Paths.from_params(root, params))


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="parameters file (its folder is the project root)",
    )


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("alembic", "mlflow.store.db.utils", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cli_errors(body: Callable[[], int]) -> int:
    """Run a command; expected failures become one line on stderr and exit status 1."""
    setup_logging()
    try:
        return body()
    except (DataValidationError, TrackingUnavailable, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
