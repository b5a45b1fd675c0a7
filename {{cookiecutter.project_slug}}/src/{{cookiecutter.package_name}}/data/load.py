"""Load a table and validate it against `schema.py`: one readable error, not a traceback wall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import schema
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


def validate(
    frame: pd.DataFrame, *, require_target: bool = True, source: str = "data"
) -> pd.DataFrame:
    """The frame with schema dtypes (float32 numerics, str categories, int target), or raise."""
    expected = [*schema.FEATURE_NAMES, *([schema.TARGET] if require_target else [])]
    missing = [c for c in expected if c not in frame.columns]
    problems: list[str] = []
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    wrong_type: list[str] = []
    nulls: list[str] = []
    out_of_range: list[str] = []
    unknown: list[str] = []
    clean: dict[str, pd.Series] = {}
    for feature in schema.FEATURES:
        if feature.name not in frame.columns:
            continue
        column = frame[feature.name]
        if column.isna().any():
            nulls.append(feature.name)
            continue
        if feature.kind == "numeric":
            values = pd.to_numeric(column, errors="coerce")
            if values.isna().any() or (
                feature.dtype == "int" and not np.all(np.mod(values, 1) == 0)
            ):
                wrong_type.append(f"{feature.name} (expected {feature.dtype})")
                continue
            low = feature.minimum if feature.minimum is not None else -np.inf
            high = feature.maximum if feature.maximum is not None else np.inf
            if ((values < low) | (values > high)).any():
                out_of_range.append(f"{feature.name} (allowed {low:g}..{high:g})")
            clean[feature.name] = values.astype(np.float32)
        else:
            values = column.astype(str)
            bad = sorted(set(values.unique()) - set(feature.categories))
            if bad:
                shown = ", ".join(repr(b) for b in bad[:3]) + (" ..." if len(bad) > 3 else "")
                unknown.append(f"{feature.name} ({shown})")
            clean[feature.name] = values.astype(object)
    if require_target and schema.TARGET in frame.columns:
        target = pd.to_numeric(frame[schema.TARGET], errors="coerce")
        if target.isna().any() or not set(target.unique()) <= {0, 1}:
            wrong_type.append(f"{schema.TARGET} (expected 0/1)")
        else:
            clean[schema.TARGET] = target.astype(np.int64)
    for label, names in (
        ("wrong type", wrong_type),
        ("empty values", nulls),
        ("out of range", out_of_range),
        ("unknown categories", unknown),
    ):
        if names:
            problems.append(f"{label}: " + ", ".join(names))
    if problems:
        raise DataValidationError(
            f"{source} does not match the schema (src/.../schema.py): " + "; ".join(problems)
        )
    return pd.DataFrame(clean, index=frame.index)[expected]


def load_table(path: Path, *, require_target: bool = True) -> pd.DataFrame:
    """Read a CSV or Parquet file and validate it."""
    return validate(read_table(path), require_target=require_target, source=str(path))
