"""Traffic for the drift tests, drawn from the synthetic generator: an unshifted sample of the
training population, and a shifted one (`amount` x3, one merchant category's share x5)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.drift.profile import Profile, build_profile

SHIFTED_CATEGORY = ("merchant_category", "travel")  # 5% of training traffic
SHIFTED_FEATURES = {"amount", SHIFTED_CATEGORY[0]}


def reference_profile(rows: int = 20_000, seed: int = 1) -> Profile:
    """A profile of a generated training set, with fraud scores of a fixed beta shape."""
    scores = np.random.default_rng(seed).beta(0.5, 12, rows // 5)
    return build_profile(generate(rows, seed), scores)


def unshifted(rows: int, seed: int) -> pd.DataFrame:
    return generate(rows, seed)


def shifted(rows: int, seed: int) -> pd.DataFrame:
    """`amount` tripled and one category five times as frequent; the other columns as drawn
    (amount_to_avg_ratio keeps its drawn value, so only the two named features move)."""
    frame = generate(rows, seed)
    frame["amount"] = np.minimum(frame["amount"] * 3, 1e6)
    column, category = SHIFTED_CATEGORY
    weights = np.where(frame[column] == category, 5.0, 1.0)
    rng = np.random.default_rng(seed + 1)
    picked = rng.choice(len(frame), size=rows, p=weights / weights.sum())
    return frame.iloc[picked].reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Request records (plain Python values, the target dropped)."""
    return list(frame.drop(columns="is_fraud").to_dict("records"))
