"""Request bodies of `/predict` and `/predict/batch`, derived from `schema.FEATURES`: declared
so FastAPI parses and documents them (every feature a documented, bounded field of the OpenAPI
schema). They hold no rules of their own: a body's values are checked by the one validator
(`inference/validation.py`), whose verdicts the routes answer as 422s located like FastAPI's
own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from email.message import Message
from functools import lru_cache
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import WithJsonSchema

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


def record_schema(unknown_category: str) -> dict[str, Any]:
    """The JSON schema of one record: every feature documented and bounded."""
    return {
        "title": "Record",
        "type": "object",
        "properties": {f.name: field_schema(f, unknown_category) for f in FEATURES},
        "required": [f.name for f in FEATURES if not f.nullable],
        "additionalProperties": False,
        "examples": [example_record()],
    }


def build_request_models(unknown_category: str, max_batch_size: int) -> tuple[Any, Any]:
    """(Record, BatchRequest): the body types of `/predict` and `/predict/batch`. FastAPI parses
    each body as JSON into plain dicts and documents the schema given here; the values are the
    validator's to check (a pydantic model per record would check nothing and cost a fifth of
    a 64-row request)."""
    record = record_schema(unknown_category)
    batch = {
        "title": "BatchRequest",
        "type": "object",
        "properties": {
            "records": {
                "type": "array",
                "items": record,
                "minItems": 1,
                "maxItems": max_batch_size,
                "description": "Records to score",
            }
        },
        "required": ["records"],
        "additionalProperties": False,
    }
    return (
        Annotated[dict[str, Any], WithJsonSchema(record)],
        Annotated[dict[str, Any], WithJsonSchema(batch)],
    )


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
