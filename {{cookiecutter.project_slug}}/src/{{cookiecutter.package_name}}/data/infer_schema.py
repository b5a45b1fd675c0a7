"""`make schema DATA=<file> TARGET=<column>`: the schema declaration inferred from a table.

Reads a CSV or Parquet file, decides per column what `schema.py` declares (numeric or
categorical, dtype, bounds, categories, blanks) and the target's classes for the project's task
(`TASK` in `schema.py`, never changed here), then rewrites `FEATURES`, `TARGET`, `CLASS_NAMES`
and `TASK` in `schema.py` (the rest of the file stays as it is), points `params.yaml`
`data.raw` at the file and `dvc add`s it. The rules (margin, dtype, levels, blanks) are the
constants and docstrings below; docs/own-data.md teaches them.

A file the rules refuse leaves every file as it was, with one line on stderr naming the column
and the fix.
"""

from __future__ import annotations

import argparse
import ast
import csv
import filecmp
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..pipeline.params import load_params, update_section
from . import raw

PACKAGE = __package__.rpartition(".")[0] if __package__ else "{{ cookiecutter.package_name }}"
TASKS = ("binary", "multiclass", "regression")
MARGIN = 0.10
MAX_LEVELS = 50
ID_LEVELS = 10
MAX_CLASSES = 50
INFERRED = "inferred from "  # the description of a column nobody described yet
READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# A CSV integer: digits with an optional sign and nothing else (no point, no exponent).
INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")


class SchemaRefusal(ValueError):
    """The file cannot become a schema; the message is one line naming the column and the fix."""


@dataclass(frozen=True)
class Column:
    """What the file says about one feature column."""

    name: str
    kind: str  # "numeric" | "categorical"
    dtype: str  # "int" | "float" | "str"
    blanks: int
    rows: int
    observed: tuple[float, float] | None = None
    bounds: tuple[float, float] | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    name: str
    task: str
    classes: tuple[str, ...]  # () for regression
    observed: tuple[float, float] | None = None


@dataclass(frozen=True)
class Inferred:
    source: str
    rows: int
    columns: tuple[Column, ...]
    target: Target


# --- reading ----------------------------------------------------------------------------------


def read_file(path: Path) -> pd.DataFrame:
    """The table with blanks as missing values: CSV cells as text, Parquet with its own types."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise SchemaRefusal(
            f"{path}: unknown file type {path.suffix or '(none)'!r}: give a .csv or .parquet file"
        )
    if not path.is_file():
        raise SchemaRefusal(f"{path} not found: give the path of your CSV or Parquet file")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
            frame.columns = [str(c) for c in frame.columns]
        else:
            _check_header(path)
            # Only an empty cell is a blank (as in data/load.py): "NA" or "null" stay words.
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except SchemaRefusal:
        raise
    except (ValueError, OSError, UnicodeDecodeError, ImportError) as exc:
        reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:160]
        raise SchemaRefusal(
            f"{path} cannot be read as {kind} ({reason}): export it again as UTF-8 CSV or Parquet"
        ) from exc
    if frame.empty:
        raise SchemaRefusal(f"{path} has no data rows: give a file with a header and rows")
    return frame


def _check_header(path: Path) -> None:
    """Names pandas would rename silently (a repeated or empty header cell) are refused."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    seen: set[str] = set()
    for position, name in enumerate(header, 1):
        if name == "":
            raise SchemaRefusal(
                f"{path}: column {position} has no name: give it a header in the first row"
            )
        if name in seen:
            raise SchemaRefusal(f"{path}: column {name!r} appears twice: rename one of them")
        seen.add(name)


# --- inference --------------------------------------------------------------------------------


def _numbers(column: pd.Series) -> tuple[pd.Series | None, str]:
    """(float values of the filled cells, dtype) when the column holds numbers, else (None,
    "str"); a column with numbers and words is refused."""
    name = str(column.name)
    filled = column.dropna()
    dtype = str(column.dtype)
    if pd.api.types.is_bool_dtype(column.dtype):
        return None, "str"
    if pd.api.types.is_datetime64_any_dtype(column.dtype) or "date" in dtype or "time" in dtype:
        raise SchemaRefusal(
            f"column {name!r} holds dates or times: turn it into numbers (e.g. hour, day of week) "
            f"or drop it from the file"
        )
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = filled.astype("float64")
        dtype_name = "int" if pd.api.types.is_integer_dtype(column.dtype) else "float"
    else:
        text = filled.astype(str)
        values = pd.to_numeric(text, errors="coerce")
        numeric = values.notna()
        if not numeric.any():
            return None, "str"
        if not numeric.all():
            word = text[~numeric].iloc[0]
            number = text[numeric].iloc[0]
            raise SchemaRefusal(
                f"column {name!r} mixes numbers and words (e.g. {number.strip()!r} and "
                f"{word!r}): make every value a number, or every value a word"
            )
        values = values.astype("float64")
        dtype_name = "int" if text.str.fullmatch(INTEGER_TEXT).all() else "float"
    if not np.isfinite(values.to_numpy()).all():
        raise SchemaRefusal(
            f"column {name!r} holds an infinite or not-a-number value: replace it with a "
            f"number, or leave the cell blank"
        )
    return values, dtype_name


def _round_outward(low: float, high: float, step: float) -> tuple[float, float]:
    digits = max(0, -math.floor(math.log10(step)))
    return (
        round(math.floor(low / step) * step, digits),
        round(math.ceil(high / step) * step, digits),
    )


def bounds(observed_low: float, observed_high: float, dtype: str) -> tuple[float, float]:
    """The declared bounds: the observed range widened by MARGIN of its width on each side,
    rounded outward (to the margin's leading decimal place), with no negative minimum for a
    column that had no negative value. For int the margin is a whole number, rounded down: a
    0/1 flag or a 0-6 weekday keeps its range."""
    margin = MARGIN * (observed_high - observed_low)
    if dtype == "int":
        margin = math.floor(margin)
        if margin == 0:
            return observed_low, observed_high
    step = 10.0 ** math.floor(math.log10(margin))
    low, high = _round_outward(observed_low - margin, observed_high + margin, step)
    if observed_low >= 0:
        low = max(low, 0.0)
    return low, high


def _levels_problem(name: str, levels: int, filled: int) -> str | None:
    if levels > MAX_LEVELS or (levels >= ID_LEVELS and levels > filled / 2):
        return (
            f"column {name!r} has {levels} distinct values in {filled} filled rows (an "
            f"identifier or free text?): drop it from the file, or group its values into at "
            f"most {MAX_LEVELS} categories"
        )
    return None


def infer_column(column: pd.Series) -> Column:
    name = str(column.name)
    rows = len(column)
    blanks = int(column.isna().sum())
    if blanks == rows:
        raise SchemaRefusal(f"column {name!r} is blank in every row: drop it from the file")
    values, dtype = _numbers(column)
    filled_hint = " (or fill its blanks with other values)" if blanks else ""
    if values is not None:
        low, high = float(values.min()), float(values.max())
        if low == high:
            raise SchemaRefusal(
                f"column {name!r} has the same value ({_literal(low)}) in every filled row: "
                f"drop it from the file{filled_hint}"
            )
        return Column(name, "numeric", dtype, blanks, rows, (low, high), bounds(low, high, dtype))
    text = column.dropna().astype(str)
    categories = tuple(sorted(set(text)))
    if len(categories) == 1:
        raise SchemaRefusal(
            f"column {name!r} has the same value ({categories[0]!r}) in every filled row: "
            f"drop it from the file{filled_hint}"
        )
    wrong = _levels_problem(name, len(categories), len(text))
    if wrong:
        raise SchemaRefusal(wrong)
    return Column(name, "categorical", "str", blanks, rows, categories=categories)


def _class_name(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def infer_target(column: pd.Series, task: str, previous: tuple[str, ...] = ()) -> Target:
    """The target's classes for a classification task (sorted: numbers by value, words
    alphabetically; the order of `previous` when it names the same classes), or its range for
    regression. A target that does not fit `task` is refused."""
    name = str(column.name)
    blanks = int(column.isna().sum())
    if blanks:
        raise SchemaRefusal(
            f"target {name!r} is blank in {blanks} of {len(column)} rows: fill those rows' "
            f"target or drop the rows"
        )
    try:
        values, dtype = _numbers(column)
    except SchemaRefusal as exc:
        raise SchemaRefusal(str(exc).replace(f"column {name!r}", f"target {name!r}", 1)) from exc
    if values is not None:
        distinct = sorted(set(values.tolist()))
        classes = tuple(_class_name(v) for v in distinct)
        continuous = dtype == "float" and not all(float(v).is_integer() for v in distinct)
        continuous = continuous or len(distinct) > MAX_CLASSES
        observed: tuple[float, float] | None = (distinct[0], distinct[-1])
    else:
        classes = tuple(sorted(set(column.astype(str))))
        continuous = False
        observed = None
    if len(classes) == 1:
        raise SchemaRefusal(
            f"target {name!r} has one class ({classes[0]!r}) in every row: a model needs rows "
            f"of at least two classes"
        )
    fix_task = "a project generated for task={}"
    if task == "regression":
        if values is None:
            raise SchemaRefusal(
                f"target {name!r} holds words ({_shown(classes)}) but the project's task is "
                f"regression (TASK in schema.py): give a numeric target, or use "
                + fix_task.format("binary" if len(classes) == 2 else "multiclass")
            )
        if len(classes) == 2:
            raise SchemaRefusal(
                f"target {name!r} has two values ({_shown(classes)}), a binary target, but the "
                f"project's task is regression (TASK in schema.py): give a continuous target, "
                f"or use " + fix_task.format("binary")
            )
        return Target(name, task, (), observed)
    if continuous:
        raise SchemaRefusal(
            f"target {name!r} is continuous ({len(classes)} distinct numbers) but the project's "
            f"task is {task} (TASK in schema.py): give a target of classes, or use "
            + fix_task.format("regression")
        )
    if task == "binary" and len(classes) > 2:
        raise SchemaRefusal(
            f"target {name!r} has {len(classes)} classes ({_shown(classes)}) but the project's "
            f"task is binary (TASK in schema.py): give a target with two classes, or use "
            + fix_task.format("multiclass")
        )
    if task == "multiclass" and len(classes) == 2:
        raise SchemaRefusal(
            f"target {name!r} has two classes ({_shown(classes)}) but the project's task is "
            f"multiclass (TASK in schema.py): give a target with three or more classes, or use "
            + fix_task.format("binary")
        )
    if set(previous) == set(classes):
        classes = tuple(previous)  # an order chosen by hand (the positive class) is kept
    return Target(name, task, classes, observed)


def infer(
    frame: pd.DataFrame, target: str, task: str, source: str, previous: tuple[str, ...] = ()
) -> Inferred:
    if task not in TASKS:
        raise SchemaRefusal(
            f"TASK in schema.py is {task!r}: set it to one of {', '.join(map(repr, TASKS))}"
        )
    names = [str(c) for c in frame.columns]
    if target not in names:
        raise SchemaRefusal(
            f"TARGET {target!r} is not a column of {source} (columns: {_shown(names)}): "
            f"pass TARGET=<one of them>"
        )
    if len(names) < 2:
        raise SchemaRefusal(f"{source} has no column besides the target {target!r}: add features")
    columns = tuple(infer_column(frame[name]) for name in names if name != target)
    return Inferred(source, len(frame), columns, infer_target(frame[target], task, previous))


# --- the current schema.py --------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """What the current schema.py declares, read without importing it: the statements to
    replace (line spans) and the values kept (TASK, hand-written descriptions, class order)."""

    text: str
    spans: dict[str, tuple[int, int]]  # FEATURES / TARGET / CLASS_NAMES / TASK -> lines
    task: str
    target: str | None
    class_names: tuple[str, ...]
    descriptions: dict[str, str]


def _assigned(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id
    return None


def _literal(value: Any) -> str:
    """A Python literal as `ruff format` writes it (double quotes, plain numbers)."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def read_declared(path: Path) -> Declared:
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise SchemaRefusal(
            f"{path} cannot be read ({exc.__class__.__name__}): run from the project root, "
            f"or restore the file with git"
        ) from exc
    spans: dict[str, tuple[int, int]] = {}
    values: dict[str, Any] = {}
    descriptions: dict[str, str] = {}
    for node in tree.body:
        name = _assigned(node)
        if name not in {"FEATURES", "TARGET", "CLASS_NAMES", "TASK"} or node.end_lineno is None:
            continue
        spans[name] = (node.lineno, node.end_lineno)
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if name == "FEATURES":
            descriptions = _descriptions(value)
        elif value is not None:
            try:
                values[name] = ast.literal_eval(value)
            except ValueError:
                values[name] = None
    missing = [n for n in ("FEATURES", "TARGET", "CLASS_NAMES") if n not in spans]
    if missing:
        raise SchemaRefusal(
            f"{path} declares no {', '.join(missing)}: restore the file with git (make schema "
            f"rewrites those statements)"
        )
    task = values.get("TASK", "binary")
    classes = values.get("CLASS_NAMES")
    return Declared(
        text=text,
        spans=spans,
        task=task if isinstance(task, str) else repr(task),
        target=values.get("TARGET") if isinstance(values.get("TARGET"), str) else None,
        class_names=tuple(str(c) for c in classes) if isinstance(classes, tuple) else (),
        descriptions=descriptions,
    )


def _descriptions(value: ast.expr | None) -> dict[str, str]:
    """name -> description of each `Feature(name, kind, description, ...)` written as literals."""
    found: dict[str, str] = {}
    for call in ast.walk(value) if value is not None else ():
        if not isinstance(call, ast.Call):
            continue
        keywords = {k.arg: k.value for k in call.keywords}
        name = call.args[0] if call.args else keywords.get("name")
        description = call.args[2] if len(call.args) > 2 else keywords.get("description")
        if (
            isinstance(name, ast.Constant)
            and isinstance(name.value, str)
            and isinstance(description, ast.Constant)
            and isinstance(description.value, str)
        ):
            found[name.value] = description.value
    return found


# --- writing ----------------------------------------------------------------------------------


def _feature_source(column: Column, description: str) -> list[str]:
    args = [_literal(column.name), _literal(column.kind), _literal(description)]
    args.append(f"dtype={_literal(column.dtype)}")
    if column.bounds is not None:
        args += [f"minimum={_literal(column.bounds[0])}", f"maximum={_literal(column.bounds[1])}"]
    lines = ["    Feature(", *(f"        {arg}," for arg in args)]
    if column.categories:
        lines.append("        categories=(")
        lines += [f"            {_literal(c)}," for c in column.categories]
        lines.append("        ),")
    if column.blanks:
        lines.append("        nullable=True,")
    lines.append("    ),")
    return lines


def render(inferred: Inferred, declared: Declared) -> str:
    """schema.py with FEATURES, TARGET, CLASS_NAMES and TASK replaced (TASK added after
    CLASS_NAMES when the file has none); everything else as it was."""
    note = f"{INFERRED}{inferred.source}"
    features = [
        "FEATURES: tuple[Feature, ...] = (",
        f"    # `make schema` from {inferred.source} ({inferred.rows} rows). Bounds: the "
        f"observed range",
        f"    # widened by {MARGIN:.0%} of its width on each side, rounded outward; "
        f"edit them freely.",
    ]
    for column in inferred.columns:
        kept = declared.descriptions.get(column.name, note)  # one written by hand stays
        features += _feature_source(column, note if kept.startswith(INFERRED) else kept)
    features.append(")")
    classes = inferred.target.classes
    class_names = (
        "CLASS_NAMES: tuple[str, ...] = ()"
        if not classes
        else "CLASS_NAMES = (" + ", ".join(_literal(c) for c in classes) + ")"
    )
    if len(class_names) > 100:
        class_names = "\n".join(["CLASS_NAMES = (", *(f"    {_literal(c)}," for c in classes), ")"])
    replacements = {
        "FEATURES": "\n".join(features),
        "TARGET": f"TARGET = {_literal(inferred.target.name)}",
        "CLASS_NAMES": class_names,
        "TASK": f"TASK = {_literal(inferred.target.task)}",
    }
    lines = declared.text.splitlines()
    spans = dict(declared.spans)
    if "TASK" not in spans:  # written right after CLASS_NAMES
        end = spans["CLASS_NAMES"][1]
        lines.insert(end, "")
        spans["TASK"] = (end + 1, end + 1)
    for name, (start, end) in sorted(spans.items(), key=lambda item: -item[1][0]):
        lines[start - 1 : end] = replacements[name].splitlines()
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _shown(values: Iterable[Any], limit: int = 6) -> str:
    items = [repr(v) for v in values]
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def describe(inferred: Inferred) -> list[str]:
    """What was decided: one line per column, then the target."""
    width = min(max((len(repr(c.name)) for c in inferred.columns), default=0), 40)
    lines = []
    for column in inferred.columns:
        if column.kind == "numeric":
            assert column.observed is not None and column.bounds is not None
            what = (
                f"numeric {column.dtype:<5} {_literal(column.bounds[0])}.."
                f"{_literal(column.bounds[1])} (seen {column.observed[0]:g}.."
                f"{column.observed[1]:g})"
            )
        else:
            what = f"categorical {len(column.categories)} levels: {_shown(column.categories, 4)}"
        if column.blanks:
            what += f"; {column.blanks / column.rows:.1%} blank -> nullable"
        lines.append(f"  {column.name!r:<{width}}  {what}")
    target = inferred.target
    if target.task == "regression":
        assert target.observed is not None
        lines.append(
            f"target {target.name!r}: continuous, seen {target.observed[0]:g}.."
            f"{target.observed[1]:g} (regression)"
        )
    else:
        line = f"target {target.name!r}: {len(target.classes)} classes {_shown(target.classes)}"
        if target.task == "binary":
            line += f"; positive class {target.classes[1]!r} (reorder CLASS_NAMES to change it)"
        lines.append(line)
    return lines


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="your CSV or Parquet file")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--schema",
        type=Path,
        default=Path("src") / PACKAGE / "schema.py",
        help="the declaration to rewrite (default: the project's, from the project root)",
    )


def _place(data: Path, root: Path) -> tuple[Path, bool]:
    """Where the file lives in the project: itself when it is inside, else data/raw/<name>
    (a different file already there is refused). Returns (path, needs a copy)."""
    data, root = data.resolve(), root.resolve()
    if data.is_relative_to(root):
        return data, False
    inside = root / "data" / "raw" / data.name
    if inside.exists() and not filecmp.cmp(data, inside, shallow=False):
        raise SchemaRefusal(
            f"{data} is outside the project and {inside.relative_to(root)} already holds "
            f"another file: rename your file, or move it into data/raw/ yourself"
        )
    return inside, not inside.exists()


def run(args: argparse.Namespace) -> int:
    root = args.params.resolve().parent
    args.data = args.data.expanduser()  # `make schema DATA=~/x.csv` reaches us unexpanded
    try:
        load_params(args.params)  # a missing params.yaml is the wrong working directory
        declared = read_declared(args.schema)
        frame = read_file(args.data)
        placed, copy = _place(args.data, root)
        relative = placed.relative_to(root).as_posix()
        inferred = infer(
            frame,
            args.target,
            declared.task,
            relative,
            declared.class_names if declared.target == args.target else (),
        )
    except (SchemaRefusal, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = render(inferred, declared)
    if copy:
        placed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.data, placed)
    tracked = (root / ".dvc").is_dir()
    if tracked:
        try:
            raw.dvc_add(placed)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    _write_atomically(args.schema, text)
    update_section(args.params, "data", {"raw": relative})
    for line in describe(inferred):
        print(line)
    done = [
        f"wrote {args.schema} ({len(inferred.columns)} features, TASK={inferred.target.task!r})",
        f"params.yaml data.raw = {relative}" + (f" (copied from {args.data})" if copy else ""),
    ]
    if tracked:
        done.append(f"tracked by DVC: commit {raw.pointer(Path(relative))}")
    print("; ".join(done))
    print("review schema.py (descriptions, bounds, the order of CLASS_NAMES), then `make pipeline`")
    return 0
