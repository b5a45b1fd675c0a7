"""The names the pipeline and the server share in the MLflow registry: aliases and the tags of
a model version. Change one here and every stage and the server follow."""

from __future__ import annotations

# aliases: `train` moves CHALLENGER to each new version, `promote` moves CHAMPION to a winner,
# the server loads CHAMPION (MODEL_ALIAS)
CHAMPION = "champion"
CHALLENGER = "challenger"

# version tags
FLAVOR = "flavor"  # "onnx" or "native": which model the version's source holds
FRAMEWORK = "framework"
RUN_ID = "run_id"
METRIC_PREFIX = "metric."  # metric.<name>: test metrics written by `evaluate`
PROMOTION_PREFIX = "promotion."  # promotion.<field>: the decision written by `promote`


def metric_tag(metric: str) -> str:
    return f"{METRIC_PREFIX}{metric}"
