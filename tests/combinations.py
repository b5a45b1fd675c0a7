"""Named answer sets: what must bake, what the hook must refuse, and which files each option owns.

SUPPORTED covers every option value at least once and every pair of compute x model_framework,
compute x python_version and model_framework x python_version that the hook accepts
(tests/test_combinations.py checks it against cookiecutter.json).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Answers = dict[str, Any]

SUPPORTED: dict[str, Answers] = {
    "default": {},
    "sklearn-py311-minimal": {
        "python_version": "3.11",
        "use_redis_cache": False,
        "use_prediction_logging": False,
        "ci": "none",
        "open_source_license": "Proprietary",
        "dvc_remote": "s3",
    },
    "sklearn-py312-monitoring-gitlab": {
        "python_version": "3.12",
        "monitoring": "prometheus-grafana",
        "ci": "gitlab",
        "dvc_remote": "gcs",
        "open_source_license": "BSD-3-Clause",
    },
    "xgboost-cpu-py313": {
        "model_framework": "xgboost",
        "dvc_remote": "azure",
        "use_kubernetes": False,
        "open_source_license": "Apache-2.0",
    },
    "xgboost-cpu-py311-nocache": {
        "model_framework": "xgboost",
        "python_version": "3.11",
        "dvc_remote": "ssh",
        "use_redis_cache": False,
    },
    "xgboost-cuda126-py312": {
        "model_framework": "xgboost",
        "compute": "cuda",
        "cuda_version": "12.6",
        "python_version": "3.12",
        "monitoring": "prometheus-grafana",
        "ci": "gitlab",
    },
    "pytorch-cpu-py312-nolog": {
        "model_framework": "pytorch",
        "python_version": "3.12",
        "use_prediction_logging": False,
    },
    "pytorch-cuda130-py313": {
        "model_framework": "pytorch",
        "compute": "cuda",
        "cuda_version": "13.0",
    },
    "pytorch-cuda128-py311-monitoring": {
        "model_framework": "pytorch",
        "compute": "cuda",
        "cuda_version": "12.8",
        "python_version": "3.11",
        "monitoring": "prometheus-grafana",
        "ci": "none",
    },
}

# Combinations that cannot work: the pre-generation hook must refuse them.
UNSUPPORTED: dict[str, tuple[Answers, str]] = {
    "sklearn-cuda128": (
        {"compute": "cuda", "cuda_version": "12.8"},
        "scikit-learn has no GPU path",
    ),
    "sklearn-cuda126": (
        {"compute": "cuda", "cuda_version": "12.6"},
        "Use model_framework=xgboost or pytorch",
    ),
    "sklearn-cuda130": ({"compute": "cuda", "cuda_version": "13.0"}, "scikit-learn has no GPU"),
    "xgboost-cuda130": (
        {"model_framework": "xgboost", "compute": "cuda", "cuda_version": "13.0"},
        "cuda_version 13.0 has no xgboost wheels",
    ),
}

# Bad answers a user can type: (answers, fragment of the one-line error).
BAD_ANSWERS: dict[str, tuple[Answers, str]] = {
    "keyword": ({"project_name": "class"}, "is a Python keyword"),
    "soft-keyword": ({"project_name": "match"}, "is a Python keyword"),
    "shadows-stdlib": ({"project_name": "json"}, "shadows the standard-library module"),
    "shadows-mlflow": ({"project_name": "MLflow"}, "shadows a dependency"),
    "shadows-test": ({"project_name": "test"}, "shadows a dependency"),
    "leading-digit": ({"project_name": "2fast Model"}, "is not a valid slug"),
    "non-ascii": ({"project_name": "Détecteur"}, "is not a valid slug"),
    "punctuation": ({"project_name": "fraud.detector!"}, "is not a valid slug"),
    "only-dashes": ({"project_name": "- -"}, "is not a valid slug"),
    "bad-package-override": ({"package_name": "fraud-detector"}, "is not a Python identifier"),
    "bad-slug-override": ({"project_slug": "Fraud Detector"}, "is not a valid slug"),
    "email-no-at": ({"author_email": "ml-team.example.com"}, "is not an e-mail address"),
    "email-no-tld": ({"author_email": "ml@localhost"}, "is not an e-mail address"),
    "empty-author": ({"author_name": ""}, "author_name is empty"),
    "multiline-description": ({"description": "one\ntwo"}, "description must be a single line"),
}

# Files that exist only for some answers: path (package as {pkg}; a trailing / is a folder)
# -> predicate on the answers. Written independently of the hook's REMOVE_WHEN table so a
# path the hook forgets to delete (or deletes wrongly) shows up as a difference.
CONDITIONAL_FILES: dict[str, Callable[[Answers], bool]] = {
    "src/{pkg}/models/sklearn_model.py": lambda a: a["model_framework"] == "sklearn",
    "src/{pkg}/models/xgboost_model.py": lambda a: a["model_framework"] == "xgboost",
    "src/{pkg}/models/torch_model.py": lambda a: a["model_framework"] == "pytorch",
    "src/{pkg}/serving/cache.py": lambda a: a["use_redis_cache"],
    "tests/serving/test_cache.py": lambda a: a["use_redis_cache"],
    "tests/serving/test_cache_integrity.py": lambda a: a["use_redis_cache"],
    "tests/serving/test_redis_credentials.py": lambda a: a["use_redis_cache"],
    "deploy/k8s/base/files/redis-start.sh": lambda a: a["use_redis_cache"],
    "src/{pkg}/db/": lambda a: a["use_prediction_logging"],
    "tests/db/": lambda a: a["use_prediction_logging"],
    "src/{pkg}/serving/prediction_log.py": lambda a: a["use_prediction_logging"],
    "tests/serving/test_prediction_log.py": lambda a: a["use_prediction_logging"],
    "alembic.ini": lambda a: a["use_prediction_logging"],
    "migrations/": lambda a: a["use_prediction_logging"],
    "deploy/": lambda a: a["use_kubernetes"],
    "docs/kubernetes.md": lambda a: a["use_kubernetes"],
    "src/{pkg}/drift/report.py": lambda a: a["use_prediction_logging"],
    "tests/drift/test_report.py": lambda a: a["use_prediction_logging"],
    "monitoring/": lambda a: a["monitoring"] == "prometheus-grafana",
    "tests/monitoring/": lambda a: a["monitoring"] == "prometheus-grafana",
    ".github/": lambda a: a["ci"] == "github",
    ".gitlab-ci.yml": lambda a: a["ci"] == "gitlab",
}

# Written by the post-generation hook, not present in the template tree.
GENERATED_BY_HOOK = {".env"}
