"""The one validator (`inference/validation.py`): the schema's rules on every kind of input
(JSON records, lists per column, pyarrow batches, pandas frames), each problem naming the
column, the row and what was expected. No model needed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from {{ cookiecutter.package_name }}.inference.validation import (
    UNKNOWN_CATEGORY,
    InvalidBatch,
    Validator,
    describe,
)
from {{ cookiecutter.package_name }}.schema import FEATURE_NAMES, FEATURES
from {{ cookiecutter.package_name }}.serving.requests import example_record

INT = next(f for f in FEATURES if f.kind == "numeric" and f.dtype == "int" and f.maximum)
FLOAT = next(f for f in FEATURES if f.kind == "numeric" and f.dtype == "float")
CATEGORICAL = next(f for f in FEATURES if f.kind == "categorical")
assert FLOAT.minimum is not None and INT.maximum is not None


def records(n: int = 3, **changes: Any) -> list[dict[str, Any]]:
    rows = [example_record() for _ in range(n)]
    rows[-1].update(changes)
    return rows


def where(row: int, column: str) -> str:
    return f"[{row}].{column}"


# (change to the last of three rows, kind of the problem, what the message says)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({FLOAT.name: FLOAT.minimum - 1}, "greater_than_equal", "greater than or equal to"),
    ({INT.name: INT.maximum + 1}, "less_than_equal", "less than or equal to"),
    ({INT.name: 2.5}, "int_from_float", "fractional part"),
    ({FLOAT.name: "lots"}, "float_parsing", "valid number"),
    ({FLOAT.name: None}, "float_type", "valid number"),
    ({FLOAT.name: float("nan")}, "finite_number", "finite number"),
    ({FLOAT.name: 10**400}, "finite_number", "finite number"),
    ({CATEGORICAL.name: "telepathy"}, "literal_error", repr(CATEGORICAL.categories[0])),
    ({CATEGORICAL.name: 7}, "string_type", "valid string"),
    ({"colour": "red"}, "extra_forbidden", "Extra inputs"),
]


@pytest.mark.parametrize(
    ("change", "kind", "says"), BAD, ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD)]
)
def test_a_bad_value_names_the_column_the_row_and_what_was_expected(
    change: dict[str, Any], kind: str, says: str
) -> None:
    with pytest.raises(InvalidBatch) as caught:
        Validator("reject").records(records(3, **change))
    (problem,) = caught.value.problems
    assert problem.kind == kind and problem.column == next(iter(change))
    assert says in problem.message
    message = describe(caught.value.problems, where)
    assert message.startswith(f"[2].{problem.column}"), message


def test_valid_records_become_typed_columns_and_back() -> None:
    rows = records(4)
    batch = Validator().records(rows)
    assert batch.size == 4 and list(batch.columns) == list(FEATURE_NAMES)
    assert batch.columns[INT.name].dtype == np.int64
    assert batch.columns[FLOAT.name].dtype == np.float64
    assert batch.records() == rows


def test_lax_values_are_converted_as_the_request_models_did() -> None:
    batch = Validator().records(records(1, **{FLOAT.name: "12.5", INT.name: 3.0}))
    assert batch.records()[0][FLOAT.name] == 12.5 and batch.records()[0][INT.name] == 3


def test_strict_columns_refuse_what_a_typed_tensor_cannot_hold() -> None:
    columns = {name: [example_record()[name]] for name in FEATURE_NAMES}
    with pytest.raises(InvalidBatch, match="valid integer"):
        Validator().columns({**columns, INT.name: [3.0]}, 1, strict=True)
    with pytest.raises(InvalidBatch, match="valid number"):
        Validator().columns({**columns, FLOAT.name: ["2"]}, 1, strict=True)


def test_unknown_categories_are_mapped_or_refused() -> None:
    rows = records(2, **{CATEGORICAL.name: "telepathy"})
    assert Validator("unknown").records(rows).columns[CATEGORICAL.name][-1] == UNKNOWN_CATEGORY
    with pytest.raises(InvalidBatch):
        Validator("reject").records(rows)


def test_a_missing_feature_is_named() -> None:
    rows = records(2)
    del rows[1][INT.name]
    with pytest.raises(InvalidBatch) as caught:
        Validator().records(rows)
    assert describe(caught.value.problems, where) == f"[1].{INT.name}: missing feature"


def test_arrow_and_frames_give_the_rows_each_problem_refuses() -> None:
    rows = records(3, **{FLOAT.name: -1.0})
    text = {name: [str(r[name]) for r in rows] for name in FEATURE_NAMES}
    text[CATEGORICAL.name][0] = "telepathy"
    text[INT.name][1] = ""
    for checked in (
        Validator().arrow(pa.RecordBatch.from_pydict(text)),
        Validator().frame(pd.DataFrame(text).replace("", None)),
    ):
        assert checked.valid.tolist() == [False, False, False]
        kinds = {p.column: (p.kind, p.rows.tolist()) for p in checked.problems}
        assert kinds[CATEGORICAL.name] == ("literal_error", [0])
        assert kinds[INT.name][1] == [1]
        assert kinds[FLOAT.name] == ("greater_than_equal", [2])
        assert checked.reasons.tolist() == [
            checked.problems.index(p) for p in sorted(checked.problems, key=lambda p: p.rows[0])
        ]
    good = Validator().arrow(pa.RecordBatch.from_pylist(records(5)))
    assert good.valid.all() and good.batch.records() == records(5)
