"""Request models derived from `schema.FEATURES`, and the ONNX feeds built from them.

Every feature is a documented, bounded field of the OpenAPI schema. Unknown categories are
either rejected (422 naming the field) or mapped to `UNKNOWN_CATEGORY`, which the model's
one-hot encoder (handle_unknown="ignore") encodes as all zeros.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model

from ..schema import FEATURES, Feature

UNKNOWN_CATEGORY = "__unknown__"
MAX_CATEGORY_LENGTH = 200

# onnxruntime input type -> numpy dtype of the feed
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.object_,
}


def _field(feature: Feature, unknown_category: str) -> tuple[Any, Any]:
    if feature.kind == "categorical":
        if unknown_category == "reject":
            annotation: Any = Literal.__getitem__(feature.categories)
            return annotation, Field(description=feature.description)
        description = (
            f"{feature.description}. One of {', '.join(feature.categories)}; "
            "other values are scored as an unknown category."
        )
        return str, Field(
            description=description,
            max_length=MAX_CATEGORY_LENGTH,
            json_schema_extra={"examples": list(feature.categories[:3])},
        )
    numeric: Any = int if feature.dtype == "int" else float
    return numeric, Field(
        description=feature.description,
        ge=feature.minimum,
        le=feature.maximum,
        allow_inf_nan=False,
    )


def example_record() -> dict[str, Any]:
    """A valid record (documentation, tests, benchmark)."""
    record: dict[str, Any] = {}
    for feature in FEATURES:
        if feature.kind == "categorical":
            record[feature.name] = feature.categories[0]
        else:
            low = feature.minimum or 0
            value = low if feature.maximum is None else (low + feature.maximum) / 2
            record[feature.name] = int(value) if feature.dtype == "int" else float(value) + 1.5
    return record


def build_request_models(
    unknown_category: str, max_batch_size: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    """(Record, BatchRequest) for the given settings."""
    fields: dict[str, Any] = {f.name: _field(f, unknown_category) for f in FEATURES}
    record_model: type[BaseModel] = create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example_record()]}),
        **fields,
    )
    batch_model: type[BaseModel] = create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(
            list[record_model],
            Field(min_length=1, max_length=max_batch_size, description="Records to score"),
        ),
    )
    return record_model, batch_model


class FeedBuilder:
    """Turns validated records into onnxruntime feeds (one `[N, 1]` array per feature)."""

    def __init__(self, input_types: Mapping[str, str], unknown_category: str) -> None:
        self.columns: list[tuple[str, Any, frozenset[str] | None]] = []
        for feature in FEATURES:
            dtype = ORT_DTYPES[input_types[feature.name]]
            known = (
                frozenset(feature.categories)
                if feature.kind == "categorical" and unknown_category == "unknown"
                else None
            )
            self.columns.append((feature.name, dtype, known))

    def normalize(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the model sees it (unknown categories mapped), JSON-ready."""
        out = dict(record)
        for name, _dtype, known in self.columns:
            if known is not None and out[name] not in known:
                out[name] = UNKNOWN_CATEGORY
        return out

    def feeds(self, records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        n = len(records)
        return {
            name: np.array([r[name] for r in records], dtype=dtype).reshape(n, 1)
            for name, dtype, _known in self.columns
        }


def cache_key(model_name: str, model_version: str, record: Mapping[str, Any]) -> str:
    """Model version + canonical hash of the (normalized) input."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"prediction:{model_name}:{model_version}:{digest}"
