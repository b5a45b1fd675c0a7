"""Records from any protocol, validated by the server's own request model and scored by its
service: one place where a protocol meets the model.

The request model (`requests.build_request_models`) carries every rule of `schema.FEATURES`
(bounds, finite numbers, integer features, known categories, no unknown columns), so a row the
protocols accept is a row `/predict` would accept.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ...schema import CLASS_NAMES
from ..scoring import ModelNotReady, ScoringService, UnscorableInput

__all__ = ["InvalidRows", "ModelNotReady", "RowScorer", "Scored", "UnscorableInput"]

MAX_REPORTED_ERRORS = 5
CLASS_INDEX = {name: index for index, name in enumerate(CLASS_NAMES)}


class InvalidRows(ValueError):
    """A request the model cannot take; the message names the field."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_errors(exc: ValidationError, where: Callable[[int, str], str]) -> str:
    """'<where row, field>: <reason> (got <value>)' for the first few errors."""
    parts = []
    for error in exc.errors()[:MAX_REPORTED_ERRORS]:
        loc = error["loc"]
        row = loc[0] if loc and isinstance(loc[0], int) else 0
        field = ".".join(str(p) for p in loc[1:]) if len(loc) > 1 else ""
        if error["type"] == "extra_forbidden":
            parts.append(f"{where(row, field)}: unknown column (not a feature of the model)")
        elif error["type"] == "missing":
            parts.append(f"{where(row, field)}: missing feature")
        else:
            parts.append(f"{where(row, field)}: {error['msg']} (got {_shown(error['input'])})")
    more = exc.error_count() - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "; ".join(parts)


class Scored:
    """Predictions of one request, in the layouts the protocols return."""

    __slots__ = ("label_indices", "labels", "model_name", "model_version", "probabilities")

    def __init__(self, model_name: str, model_version: str, outputs: list[dict[str, Any]]) -> None:
        self.model_name, self.model_version = model_name, model_version
        self.labels: list[str] = [o["label"] for o in outputs]
        self.label_indices: list[int] = [CLASS_INDEX[label] for label in self.labels]
        # the service's dicts are ordered as CLASS_NAMES
        self.probabilities: list[list[float]] = [list(o["probabilities"].values()) for o in outputs]


def request_id_from(given: str | None) -> str:
    """The caller's id when it is short and printable (it goes into the prediction log)."""
    if given and len(given) <= 64 and given.isprintable():
        return given
    return secrets.token_hex(16)


class RowScorer:
    """Validate records against the request model, then score them like `/predict/batch`
    (prediction log, metrics, the model a reload cannot swap mid-request)."""

    def __init__(
        self, services: ScoringService, record_model: type[BaseModel], max_rows: int
    ) -> None:
        self.services = services
        self.max_rows = max_rows
        self._rows: TypeAdapter[list[BaseModel]] = TypeAdapter(list[record_model])  # type: ignore[valid-type]

    @property
    def model_name(self) -> str:
        return self.services.settings.model_name

    def current(self) -> Any:
        """The loaded model (raises ModelNotReady)."""
        return self.services.predictor()

    def validate(self, rows: list[Any], where: Callable[[int, str], str]) -> list[dict[str, Any]]:
        if not rows:
            raise InvalidRows(f"{where(0, '')}: no rows to score")
        if len(rows) > self.max_rows:
            raise InvalidRows(
                f"{where(0, '')}: {len(rows)} rows, at most {self.max_rows} per request "
                "(MAX_BATCH_SIZE)"
            )
        try:
            records = self._rows.validate_python(rows)
        except ValidationError as exc:
            raise InvalidRows(describe_errors(exc, where)) from None
        return [record.model_dump() for record in records]

    def score(self, records: list[dict[str, Any]], request_id: str | None = None) -> Scored:
        """Raises ModelNotReady, UnscorableInput."""
        started = time.perf_counter()
        request_id = request_id_from(request_id)
        model, outputs = self.services.predict_batch(records, request_id, started)
        return Scored(model.name, model.version, outputs)
