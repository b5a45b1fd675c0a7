"""Records from any protocol, validated by the server's own request model and scored by its
service: one place where a protocol meets the model.

The request model (`requests.build_request_models`) carries every rule of `schema.FEATURES`
(bounds, finite numbers, integer features, known categories, no unknown columns), so a row the
protocols accept is a row `/predict` would accept.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ...schema import CLASS_NAMES, FEATURE_NAMES, FEATURES
from ..requests import MAX_CATEGORY_LENGTH, UNKNOWN_CATEGORY
from ..scoring import ModelNotReady, ScoringService, UnscorableInput

__all__ = ["InvalidRows", "ModelNotReady", "RowScorer", "Scored", "UnscorableInput"]

MAX_REPORTED_ERRORS = 5
CLASS_INDEX = {name: index for index, name in enumerate(CLASS_NAMES)}
CATEGORIES = {f.name: frozenset(f.categories) for f in FEATURES if f.kind == "categorical"}
INTEGER, NUMBER = frozenset({int}), frozenset({int, float})  # bool is its own type


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

    def __init__(
        self,
        model_name: str,
        model_version: str,
        label_indices: list[int],
        probabilities: list[list[float]],
    ) -> None:
        self.model_name, self.model_version = model_name, model_version
        self.label_indices = label_indices
        self.labels: list[str] = [CLASS_NAMES[i] for i in label_indices]
        self.probabilities = probabilities  # one row per record, ordered as CLASS_NAMES

    @classmethod
    def from_outputs(
        cls, model_name: str, model_version: str, outputs: list[dict[str, Any]]
    ) -> Scored:
        # the service's dicts are ordered as CLASS_NAMES
        return cls(
            model_name,
            model_version,
            [CLASS_INDEX[o["label"]] for o in outputs],
            [list(o["probabilities"].values()) for o in outputs],
        )


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

    async def score(self, records: list[dict[str, Any]], request_id: str | None = None) -> Scored:
        """Raises ModelNotReady, UnscorableInput."""
        started = time.perf_counter()
        request_id = request_id_from(request_id)
        model, outputs = await self.services.predict_batch(records, request_id, started)
        return Scored.from_outputs(model.name, model.version, outputs)

    def valid_columns(self, columns: Mapping[str, list[Any]]) -> dict[str, Any] | None:
        """The columns as the model takes them, when every value is valid as sent: JSON's own
        type for the feature (int for integer features; int or float for the others; str for
        categoricals), in range, a known category (or mapped to the unknown one). Checked
        per column with builtins that loop in C (type set, min, max, fsum): no per-row
        model. None when anything is off or would need a conversion (a number sent as a
        string): the row path then decides, with the same rules as `/predict`, and names
        the problem."""
        if len(columns) != len(FEATURE_NAMES) or not all(n in columns for n in FEATURE_NAMES):
            return None
        size = len(columns[FEATURE_NAMES[0]])
        if not 0 < size <= self.max_rows:
            return None
        unknown = self.services.settings.unknown_category
        out: dict[str, Any] = {}
        for feature in FEATURES:
            values = columns[feature.name]
            if len(values) != size:
                return None
            kinds = set(map(type, values))
            if feature.kind == "categorical":
                if kinds != {str}:
                    return None
                known = CATEGORIES[feature.name]
                if unknown == "reject":
                    if not known.issuperset(values):
                        return None
                    out[feature.name] = values
                else:
                    if max(map(len, values)) > MAX_CATEGORY_LENGTH:
                        return None
                    out[feature.name] = [v if v in known else UNKNOWN_CATEGORY for v in values]
                continue
            if not kinds <= (INTEGER if feature.dtype == "int" else NUMBER):
                return None
            try:  # NaN or inf anywhere makes the exact sum non-finite
                if not math.isfinite(math.fsum(values)):
                    return None
            except OverflowError:  # a huge integer, or sums beyond float: let the row path say
                return None
            if feature.minimum is not None and min(values) < feature.minimum:
                return None
            if feature.maximum is not None and max(values) > feature.maximum:
                return None
            out[feature.name] = values
        return out

    async def score_columns(
        self,
        columns: Mapping[str, list[Any]] | None,
        rows: Callable[[], list[Any]],
        where: Callable[[int, str], str],
        request_id: str | None = None,
    ) -> Scored:
        """Score a columnar body: straight from its columns when every value is valid as sent
        (`valid_columns`), else through the row path (`rows()` builds the rows for
        `validate`). A single row takes the row path too: for one row it is the cheaper one
        (measured). Raises InvalidRows, ModelNotReady, UnscorableInput."""
        single = columns is not None and all(len(v) == 1 for v in columns.values())
        valid = self.valid_columns(columns) if columns is not None and not single else None
        if valid is None:
            return await self.score(self.validate(rows(), where), request_id)
        started = time.perf_counter()
        model, indices, probabilities = self.services.predict_columns(
            valid, request_id_from(request_id), started
        )
        return Scored(model.name, model.version, indices, probabilities)
