"""Load a table and validate it against `schema.py`: one readable error, not a traceback wall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import schema
from ..inference.validation import TARGET_EXPECTED, Problem, Validator
from . import raw


class DataValidationError(ValueError):
    """The data does not match the schema (the message names every offending column)."""


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    wrong = raw.problem(path)
    if wrong:
        raise DataValidationError(wrong)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        # Everything as text first: types are checked (and converted) by `validate`.
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' parser errors included
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:120]
        raise DataValidationError(f"{path} cannot be read ({reason}): {raw.FIX}") from exc


# how the data loader summarises the validator's problems: one line per kind of problem
SUMMARY = {
    "missing": "missing columns",
    "int_parsing": "wrong type",
    "float_parsing": "wrong type",
    "int_from_float": "wrong type",
    "finite_number": "wrong type",
    "int_type": "empty values",
    "float_type": "empty values",
    "string_type": "empty values",
    "greater_than_equal": "out of range",
    "less_than_equal": "out of range",
    "literal_error": "unknown categories",
}


def _summary(problem: Problem) -> str:
    feature = schema.FEATURES_BY_NAME[problem.column]
    kind = SUMMARY.get(problem.kind, "wrong type")
    if kind == "wrong type":
        return f"{feature.name} (expected {feature.dtype})"
    if kind == "out of range":
        low = feature.minimum if feature.minimum is not None else -np.inf
        high = feature.maximum if feature.maximum is not None else np.inf
        return f"{feature.name} (allowed {low:g}..{high:g})"
    if kind == "unknown categories":
        bad = sorted({str(v) for v in problem.values})
        shown = ", ".join(repr(b) for b in bad[:3]) + (" ..." if len(problem.rows) > 3 else "")
        return f"{feature.name} ({shown})"
    return feature.name


def validate(
    frame: pd.DataFrame, *, require_target: bool = True, source: str = "data"
) -> pd.DataFrame:
    """The frame with schema dtypes (float32 numerics, str categories, int target), or raise:
    the rules are the server's validator's (`inference/validation.py`), every unknown category
    refused."""
    expected = [*schema.FEATURE_NAMES, *([schema.TARGET] if require_target else [])]
    checked = Validator("reject").frame(frame)
    by_kind: dict[str, list[str]] = {}
    for problem in checked.problems:
        kind = SUMMARY.get(problem.kind, "wrong type")
        entry = _summary(problem)
        if entry not in by_kind.setdefault(kind, []):
            by_kind[kind].append(entry)
    if require_target:
        if schema.TARGET not in frame.columns:
            by_kind.setdefault("missing columns", []).append(schema.TARGET)
        else:
            target = Validator().target(frame[schema.TARGET].to_numpy())
            if target is None:
                by_kind.setdefault("wrong type", []).append(TARGET_EXPECTED)
    problems = [
        f"{label}: " + ", ".join(by_kind[label])
        for label in ("missing columns", "wrong type", "empty values", "out of range",
                      "unknown categories")
        if label in by_kind
    ]  # fmt: skip
    if problems:
        raise DataValidationError(
            f"{source} does not match the schema (src/.../schema.py): " + "; ".join(problems)
        )
    clean: dict[str, Any] = {}
    for feature in schema.FEATURES:
        values = checked.batch.columns[feature.name]
        clean[feature.name] = values if feature.kind == "categorical" else values.astype(np.float32)
    if require_target:
        clean[schema.TARGET] = target
    return pd.DataFrame(clean, index=frame.index)[expected]


def load_table(path: Path, *, require_target: bool = True) -> pd.DataFrame:
    """Read a CSV or Parquet file and validate it."""
    return validate(read_table(path), require_target=require_target, source=str(path))
