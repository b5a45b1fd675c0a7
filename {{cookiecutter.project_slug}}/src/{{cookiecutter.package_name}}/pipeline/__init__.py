"""The training pipeline: prepare -> train -> evaluate -> promote (and tune).

Each stage is a module with `add_arguments(parser)` / `run(args) -> int` for the CLI and DVC,
and a plain function (`prepare`, `train`, ...) that tests and `workflow.run_pipeline` call.
"""
