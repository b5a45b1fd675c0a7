"""What every protocol does once it has decoded its body: the size limit, the validator (into a
column batch) and the scoring service. A protocol module decodes its wire format, calls one of
these, and renders the result; its errors name the field the way its wire format places it
(`where(row, column)`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...inference.predictor import Predictor
from ...inference.results import Result
from ...inference.validation import InvalidBatch, Validator, describe
from ..requests import request_id_from
from ..scoring import ModelNotReady, ScoringService, UnscorableInput

__all__ = ["InvalidInput", "ModelNotReady", "ProtocolInput", "UnscorableInput", "Where"]

Where = Callable[[int, str], str]  # (row, column) -> where the value is in the wire format


class InvalidInput(ValueError):
    """A request the model cannot take; the message names the field."""


class ProtocolInput:
    def __init__(self, services: ScoringService, validator: Validator, max_rows: int) -> None:
        self.services, self.validator, self.max_rows = services, validator, max_rows

    @property
    def model_name(self) -> str:
        return self.services.settings.model_name

    def current(self) -> Predictor:
        """The loaded model (raises ModelNotReady)."""
        return self.services.predictor()

    def _check_size(self, size: int, where: Where) -> None:
        if not size:
            raise InvalidInput(f"{where(0, '')}: no rows to score")
        if size > self.max_rows:
            raise InvalidInput(
                f"{where(0, '')}: {size} rows, at most {self.max_rows} per request (MAX_BATCH_SIZE)"
            )

    async def records(
        self, records: Sequence[Mapping[str, Any]], where: Where, request_id: str | None
    ) -> tuple[Predictor, Result]:
        """Score rows given as objects. Raises InvalidInput, ModelNotReady, UnscorableInput."""
        started = time.perf_counter()
        self._check_size(len(records), where)
        try:
            batch = self.validator.records(records)
        except InvalidBatch as exc:
            raise InvalidInput(describe(exc.problems, where)) from None
        return await self.services.score(batch, request_id_from(request_id), started)

    async def columns(
        self,
        columns: Mapping[str, Sequence[Any]],
        size: int,
        where: Where,
        request_id: str | None,
        strict: bool = False,
    ) -> tuple[Predictor, Result]:
        """Score rows given as one list per feature, all of `size` values (`strict`: typed
        tensors, see `Validator.columns`)."""
        started = time.perf_counter()
        self._check_size(size, where)
        try:
            batch = self.validator.columns(columns, size, strict)
        except InvalidBatch as exc:
            raise InvalidInput(describe(exc.problems, where)) from None
        return await self.services.score(batch, request_id_from(request_id), started)
