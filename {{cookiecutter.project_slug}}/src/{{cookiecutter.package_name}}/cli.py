"""`{{ cookiecutter.package_name }} <command>`: one entry point for the pipeline and the server.

Commands are looked up lazily so the serve image, which has no training libraries, can still
run `{{ cookiecutter.package_name }} serve`. Each command module provides
`add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .settings import WeakSecretsError

PACKAGE = __package__ or "{{ cookiecutter.package_name }}"

# command -> (module relative to the package, help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("data.generate", "write the synthetic example dataset"),
    "schema": ("data.infer_schema", "infer schema.py from your CSV/Parquet file; data.raw -> it"),
    "prepare": ("pipeline.prepare", "validate raw data and split train/test"),
    "train": ("pipeline.train", "train, log to MLflow and register a new version"),
    "evaluate": ("pipeline.evaluate", "evaluate a model version on the test split"),
    "promote": ("pipeline.promote", "move the champion alias when the challenger wins"),
    "tune": ("pipeline.tune", "Optuna study; best parameters go to params.yaml"),
    "serve": ("serving.serve", "run the model server (uvicorn)"),
    "score": ("batch_scoring", "score a CSV/Parquet file with the champion, streamed"),
{%- if cookiecutter.use_prediction_logging %}
    "drift-report": ("drift.report", "logged predictions vs the champion's reference profile"),
{%- endif %}
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PACKAGE, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage / the error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"{PACKAGE}.{COMMANDS[name][0]}")
    parser = argparse.ArgumentParser(prog=f"{PACKAGE} {name}", description=COMMANDS[name][1])
    try:
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(rest)))
    except WeakSecretsError as exc:  # production with a guessable secret: the lines, no traceback
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
