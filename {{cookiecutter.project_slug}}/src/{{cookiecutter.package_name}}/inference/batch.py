"""`ColumnBatch`: validated rows as one typed numpy array per feature, the one format every entry
(the HTTP routes, the protocols, `score`, `evaluate`, the data loader) converts its wire format
into once, through `validation.py`, and the predictor scores.

Numeric features are float64 (int64 for integer features); categoricals are object arrays of
str, unknown categories already mapped. A feature the schema declares `nullable` carries a
mask (True where the value is blank; the value itself is NaN or "" there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..schema import FEATURE_NAMES


@dataclass(slots=True)
class ColumnBatch:
    columns: dict[str, np.ndarray]  # schema order, each of length `size`
    size: int
    missing: dict[str, np.ndarray] = field(default_factory=dict)  # nullable features only
    _records: list[dict[str, Any]] | None = field(default=None, repr=False)

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready dicts (int, float, str; None where blank): what the cache key,
        the drift window and the prediction log keep. Built once, on first use."""
        if self._records is None:
            lists = [self.columns[name].tolist() for name in FEATURE_NAMES]
            for name, blank in self.missing.items():
                if blank.any():
                    column = lists[FEATURE_NAMES.index(name)]
                    for i in np.flatnonzero(blank).tolist():
                        column[i] = None
            self._records = [
                dict(zip(FEATURE_NAMES, row, strict=True)) for row in zip(*lists, strict=True)
            ]
        return self._records

    def take(self, rows: np.ndarray) -> ColumnBatch:
        """The rows at `rows` (positions or a boolean mask)."""
        columns = {name: values[rows] for name, values in self.columns.items()}
        missing = {name: mask[rows] for name, mask in self.missing.items()}
        size = len(next(iter(columns.values()))) if columns else 0
        return ColumnBatch(columns, size, missing)

    @staticmethod
    def concat(batches: Sequence[ColumnBatch]) -> ColumnBatch:
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        columns = {
            name: np.concatenate([b.columns[name] for b in batches]) for name in first.columns
        }
        missing = {
            name: np.concatenate([b.missing[name] for b in batches]) for name in first.missing
        }
        return ColumnBatch(columns, sum(b.size for b in batches), missing)
