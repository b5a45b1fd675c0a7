"""One interface for every framework: `create(params, device) -> TabularModel`.

The generator keeps exactly one of `sklearn_model`, `xgboost_model`, `torch_model`; this
module imports whichever exists, so the rest of the code never names a framework.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

from .base import FitResult, TabularModel, features, onnx_feeds, resolve_device

CANDIDATES = ("sklearn_model", "xgboost_model", "torch_model")


def _framework_module() -> ModuleType:
    for name in CANDIDATES:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise ImportError(f"no model module found in {__name__} (expected one of {CANDIDATES})")


_module = _framework_module()
FRAMEWORK: str = _module.FRAMEWORK


def create(params: dict[str, Any], device: str = "cpu") -> TabularModel:
    """A new, unfitted model of the project's framework."""
    model: TabularModel = _module.Model(params, resolve_device(device, FRAMEWORK))
    return model


def suggest_params(trial: Any) -> dict[str, Any]:
    """Optuna search space of the project's framework."""
    suggested: dict[str, Any] = _module.suggest_params(trial)
    return suggested


__all__ = [
    "FRAMEWORK",
    "FitResult",
    "TabularModel",
    "create",
    "features",
    "onnx_feeds",
    "resolve_device",
    "suggest_params",
]
