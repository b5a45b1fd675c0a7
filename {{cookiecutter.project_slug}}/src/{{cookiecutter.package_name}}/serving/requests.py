"""Request models of `/predict` and `/predict/batch`, derived from `schema.FEATURES`: they
declare the bodies so FastAPI parses and documents them (every feature a documented, bounded
field of the OpenAPI schema). They hold no rules of their own: a body's values are checked by
the one validator (`inference/validation.py`), whose verdicts the routes answer as 422s
located like FastAPI's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from email.message import Message
from functools import lru_cache
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from ..inference.validation import (
    MAX_CATEGORY_LENGTH,
    Problem,
    errors,
)
from ..schema import FEATURES, Feature


def field_schema(feature: Feature, unknown_category: str) -> dict[str, Any]:
    """The feature's JSON schema (documentation: the validator enforces it)."""
    schema: dict[str, Any]
    if feature.kind == "categorical":
        if unknown_category == "reject":
            schema = {"type": "string", "enum": list(feature.categories)}
        else:
            schema = {
                "type": "string",
                "maxLength": MAX_CATEGORY_LENGTH,
                "examples": list(feature.categories[:3]),
            }
            description = (
                f"{feature.description}. One of {', '.join(feature.categories)}; "
                "other values are scored as an unknown category."
            )
            return {**schema, "description": description}
    else:
        schema = {"type": "integer" if feature.dtype == "int" else "number"}
        if feature.minimum is not None:
            schema["minimum"] = feature.minimum
        if feature.maximum is not None:
            schema["maximum"] = feature.maximum
    if feature.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "description": feature.description}


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
    fields: dict[str, Any] = {
        f.name: (
            Annotated[Any, WithJsonSchema(field_schema(f, unknown_category))],
            Field(default=None) if f.nullable else ...,
        )
        for f in FEATURES
    }
    record_model: type[BaseModel] = create_model(
        "Record",
        # extra keys reach the validator, which refuses them by name
        __config__=ConfigDict(
            extra="allow",
            json_schema_extra={"examples": [example_record()], "additionalProperties": False},
        ),
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


def request_error(
    problems: Sequence[Problem], location: Callable[[int | None, str], tuple[Any, ...]]
) -> RequestValidationError:
    """The validator's verdict as FastAPI's own 422 (the app's handler names each field)."""
    return RequestValidationError(
        [
            {"type": kind, "loc": location(row, column), "msg": message, "input": value}
            for row, column, kind, message, value in errors(problems)
        ]
    )


def request_id_from(given: str | None) -> str:
    """The caller's id when it is short and printable (it goes into the prediction log), else
    32 random hex digits (like uuid4().hex, at a fifth of its cost)."""
    if given and len(given) <= 64 and given.isprintable():
        return given
    return secrets.token_hex(16)


@lru_cache(maxsize=64)
def is_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, parameters allowed (FastAPI's rule)."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
