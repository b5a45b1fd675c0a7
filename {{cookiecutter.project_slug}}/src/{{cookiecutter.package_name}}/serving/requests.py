"""Request models derived from `schema.FEATURES` (the OpenAPI schema of the prediction routes).

Every feature is a documented, bounded field of the OpenAPI schema. Unknown categories are
either rejected (422 naming the field) or mapped to `UNKNOWN_CATEGORY`, which the model's
one-hot encoder (handle_unknown="ignore") encodes as all zeros.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..schema import FEATURES, Feature

UNKNOWN_CATEGORY = "__unknown__"
MAX_CATEGORY_LENGTH = 200


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
    """A valid record (documentation, tests, benchmark): first category, middle of each range."""
    record: dict[str, Any] = {}
    for feature in FEATURES:
        if feature.kind == "categorical":
            record[feature.name] = feature.categories[0]
        else:
            low = feature.minimum or 0
            value = low if feature.maximum is None else (low + feature.maximum) / 2
            record[feature.name] = int(value) if feature.dtype == "int" else float(value)
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
