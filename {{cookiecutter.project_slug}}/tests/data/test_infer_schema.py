"""`make schema`: the declaration inferred from a team's own table (CSV and Parquet, word labels,
names with spaces, slashes, dots and non-ASCII, blanks), written as an importable, stable
schema.py, and every refusal as one line that leaves schema.py and params.yaml as they were."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.cli import main
from {{ cookiecutter.package_name }}.data.infer_schema import bounds

from ..conftest import PROJECT_ROOT

PACKAGE = "{{ cookiecutter.package_name }}"
SCHEMA = Path("src") / PACKAGE / "schema.py"
BIN = Path(sys.executable).parent
ROWS = 400
BLANK_SHARE = 0.03


def own_table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A table unlike the example: int, float and string columns under awkward names, a few
    percent blanks in the features, word labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age (years)": rng.integers(18, 91, rows),
            "dose mg/kg": np.round(rng.uniform(0.5, 12.5, rows), 3),
            "temp.delta": np.round(rng.normal(0, 2, rows), 2),
            "größe": rng.choice(["klein", "mittel", "groß"], rows),
            "blood type": rng.choice(["A", "B", "AB", "O"], rows),
        }
    )
    for name in frame.columns:
        frame[name] = frame[name].astype(object)
        frame.loc[rng.random(rows) < BLANK_SHARE, name] = None
    frame["dose mg/kg"] = frame["dose mg/kg"].astype("Float64")
    frame["age (years)"] = frame["age (years)"].astype("Int64")
    frame["temp.delta"] = frame["temp.delta"].astype("Float64")
    frame["outcome"] = rng.choice(["relapse", "remission"], rows)
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """params.yaml and schema.py of the project in a folder of their own (no DVC)."""
    root = tmp_path / "project"
    (root / SCHEMA.parent).mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    shutil.copy(PROJECT_ROOT / SCHEMA, root / SCHEMA)
    return root


def set_task(root: Path, task: str) -> None:
    path = root / SCHEMA
    path.write_text(
        path.read_text(encoding="utf-8").replace('TASK = "binary"', f'TASK = "{task}"'),
        encoding="utf-8",
    )


def infer(root: Path, data: Path, target: str) -> int:
    return main(
        [
            "schema",
            "--data",
            str(data),
            "--target",
            target,
            "--params",
            str(root / "params.yaml"),
            "--schema",
            str(root / SCHEMA),
        ]
    )


def load(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("inferred_schema", root / SCHEMA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_inferred_schema_declares_the_tables_columns(
    project: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = own_table()
    data = write(frame, project / "data" / "raw" / f"patients{suffix}")
    assert infer(project, data, "outcome") == 0
    schema = load(project)
    features = {f.name: f for f in schema.FEATURES}
    assert list(features) == ["age (years)", "dose mg/kg", "temp.delta", "größe", "blood type"]
    assert (schema.TARGET, schema.CLASS_NAMES, schema.TASK) == (
        "outcome",
        ("relapse", "remission"),
        "binary",
    )
    age, dose, delta = features["age (years)"], features["dose mg/kg"], features["temp.delta"]
    assert (age.kind, age.dtype, dose.dtype, delta.dtype) == ("numeric", "int", "float", "float")
    for feature in (age, dose, delta):
        values = frame[feature.name].dropna().astype(float)
        span = values.max() - values.min()
        # the observed range widened by 10% of its width each side (rounded outward), never
        # below 0 when nothing was negative
        margin = 0.1 * span if feature.dtype == "float" else np.floor(0.1 * span)
        widened = values.min() - margin
        assert feature.minimum <= (max(widened, 0) if values.min() >= 0 else widened)
        assert values.max() + margin <= feature.maximum <= values.max() + 0.3 * span
    assert age.minimum >= 0 and dose.minimum >= 0 and delta.minimum < 0
    assert float(age.minimum).is_integer() and float(age.maximum).is_integer()
    assert features["größe"].categories == ("groß", "klein", "mittel")
    assert features["blood type"].categories == ("A", "AB", "B", "O")
    assert (features["größe"].kind, features["größe"].dtype) == ("categorical", "str")
    assert all(f.nullable for f in features.values())  # every column had blanks
    assert all(f.description == f"inferred from data/raw/patients{suffix}" for f in schema.FEATURES)
    assert f"data/raw/patients{suffix}" in (project / "params.yaml").read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    assert "'dose mg/kg'" in printed and "nullable" in printed and "'remission'" in printed


@pytest.mark.parametrize(
    ("low", "high", "dtype", "declared"),
    [
        (6.981, 28.11, "float", (4, 31)),  # margin 2.1: whole numbers
        (-3.2, 4.1, "float", (-4.0, 4.9)),  # margin 0.73: tenths, negative stays negative
        (0.05, 0.16, "float", (0.03, 0.18)),  # margin 0.011: hundredths
        (143.5, 2501, "float", (0, 2800)),  # no negative value: never below 0
        (18, 90, "int", (11, 97)),  # margin 7.2 -> 7
        (0, 1, "int", (0, 1)),  # a flag keeps its range
        (0, 6, "int", (0, 6)),
    ],
)
def test_bounds_widen_the_observed_range(
    low: float, high: float, dtype: str, declared: tuple[float, float]
) -> None:
    assert bounds(low, high, dtype) == pytest.approx(declared)


def test_rerun_writes_the_same_file_and_keeps_what_was_edited_by_hand(project: Path) -> None:
    data = write(own_table(), project / "data" / "raw" / "patients.csv")
    assert infer(project, data, "outcome") == 0
    first = (project / SCHEMA).read_text(encoding="utf-8")
    assert infer(project, data, "outcome") == 0
    assert (project / SCHEMA).read_text(encoding="utf-8") == first
    # A description written by hand and a chosen positive class survive the next inference.
    edited = first.replace(
        '"blood type",\n        "categorical",\n        "inferred from data/raw/patients.csv"',
        '"blood type",\n        "categorical",\n        "ABO group"',
    ).replace('("relapse", "remission")', '("remission", "relapse")')
    (project / SCHEMA).write_text(edited, encoding="utf-8")
    assert infer(project, data, "outcome") == 0
    schema = load(project)
    assert schema.CLASS_NAMES == ("remission", "relapse")
    assert schema.FEATURES_BY_NAME["blood type"].description == "ABO group"


def test_written_schema_is_lint_clean(project: Path) -> None:
    data = write(own_table(), project / "data" / "raw" / "patients.csv")
    assert infer(project, data, "outcome") == 0
    ruff = shutil.which("ruff", path=str(BIN)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is in the dev group")
    config = ["--config", str(PROJECT_ROOT / "pyproject.toml")]
    for command in (["check", *config], ["format", "--check", *config]):
        done = subprocess.run(
            [ruff, *command, str(project / SCHEMA)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_params_keep_their_comments(project: Path) -> None:
    before = (project / "params.yaml").read_text(encoding="utf-8").splitlines()
    data = write(own_table(), project / "data" / "raw" / "patients.csv")
    assert infer(project, data, "outcome") == 0
    after = (project / "params.yaml").read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1 and "raw: data/raw/patients.csv" in changed[0][1]
    assert "#" in changed[0][1]  # the line's comment stays


@pytest.mark.parametrize(
    ("task", "labels", "classes"),
    [
        ("multiclass", ["red", "green", "blue"], ("blue", "green", "red")),
        ("multiclass", [3, 10, 1], ("1", "3", "10")),  # numbers in their order, as text
        ("binary", [0, 1], ("0", "1")),
    ],
)
def test_classes_for_the_projects_task(
    project: Path, task: str, labels: list[Any], classes: tuple[str, ...]
) -> None:
    set_task(project, task)
    frame = own_table()
    frame["outcome"] = np.resize(np.asarray(labels, dtype=object), len(frame))
    assert infer(project, write(frame, project / "t.csv"), "outcome") == 0
    schema = load(project)
    declared = (schema.TASK, schema.CLASS_NAMES)
    assert declared == (task, classes)


def test_regression_target_has_no_classes(project: Path) -> None:
    set_task(project, "regression")
    frame = own_table()
    frame["outcome"] = np.linspace(-5.5, 300.25, len(frame))
    assert infer(project, write(frame, project / "t.parquet"), "outcome") == 0
    schema = load(project)
    assert (schema.TASK, schema.TARGET, schema.CLASS_NAMES) == ("regression", "outcome", ())


def _frame(**changes: Any) -> pd.DataFrame:
    frame = own_table(rows=200)
    for name, values in changes.items():
        frame[name] = values
    return frame


REFUSALS: dict[str, tuple[str, Any, str, tuple[str, ...]]] = {
    # name: (task, frame, target, what the one line names)
    "target not a column": ("binary", _frame(), "result", ("'result'", "TARGET=")),
    "mixed types": (
        "binary",
        _frame(code=["12", "x7"] * 100),
        "outcome",
        ("'code'", "numbers and words"),
    ),
    "one class": ("binary", _frame(outcome=["yes"] * 200), "outcome", ("'outcome'", "one class")),
    "continuous target for binary": (
        "binary",
        _frame(outcome=np.linspace(0, 1, 200)),
        "outcome",
        ("'outcome'", "continuous", "task=regression"),
    ),
    "three classes for binary": (
        "binary",
        _frame(outcome=["a", "b", "c", "d"] * 50),
        "outcome",
        ("'outcome'", "4 classes", "task=multiclass"),
    ),
    "two classes for multiclass": (
        "multiclass",
        _frame(),
        "outcome",
        ("'outcome'", "two classes", "task=binary"),
    ),
    "two values for regression": (
        "regression",
        _frame(outcome=[0, 1] * 100),
        "outcome",
        ("'outcome'", "two values", "task=binary"),
    ),
    "words for regression": (
        "regression",
        _frame(),
        "outcome",
        ("'outcome'", "words", "numeric target"),
    ),
    "constant column": (
        "binary",
        _frame(site=["north"] * 200),
        "outcome",
        ("'site'", "same value", "drop it"),
    ),
    "constant number": ("binary", _frame(v=[7] * 200), "outcome", ("'v'", "same value")),
    "too many levels": (
        "binary",
        _frame(**{"patient id": [f"p{i}" for i in range(200)]}),
        "outcome",
        ("'patient id'", "200 distinct", "at most 50"),
    ),
    "all blank": (
        "binary",
        _frame(notes=[None] * 200),
        "outcome",
        ("'notes'", "blank in every row", "drop it"),
    ),
    "blank target": (
        "binary",
        _frame(outcome=["yes", "no", None, "no"] * 50),
        "outcome",
        ("'outcome'", "blank in 50", "fill"),
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_refusal_is_one_line_and_writes_nothing(
    project: Path, case: str, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    task, frame, target, named = REFUSALS[case]
    set_task(project, task)
    data = write(frame, project / "data" / "raw" / f"bad{suffix}")
    _assert_refused(project, data, target, named, capsys)


def _assert_refused(
    project: Path,
    data: Path,
    target: str,
    named: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = {p: (project / p).read_bytes() for p in (SCHEMA, Path("params.yaml"))}
    assert infer(project, data, target) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert all(word in err[0] for word in named), err[0]
    assert {p: (project / p).read_bytes() for p in before} == before


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("missing.csv", None, ("missing.csv", "not found")),
        ("table.xlsx", b"PK\x03\x04", ("table.xlsx", ".xlsx", ".csv or .parquet")),
        ("broken.parquet", b"not parquet at all", ("broken.parquet", "cannot be read")),
        ("latin1.csv", "größe,y\nä,1\n".encode("latin-1"), ("latin1.csv", "UTF-8")),
        ("empty.csv", b"a,b,outcome\n", ("empty.csv", "no data rows")),
        ("twice.csv", b"a,a,outcome\n1,2,x\n3,4,y\n", ("'a'", "appears twice")),
        ("nameless.csv", b"a,,outcome\n1,2,x\n3,4,y\n", ("column 2", "no name")),
    ],
)
def test_unreadable_file_is_one_line(
    project: Path,
    name: str,
    content: bytes | None,
    named: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = project / name
    if content is not None:
        data.write_bytes(content)
    _assert_refused(project, data, "outcome", named, capsys)


# --- `make schema` as written, in a DVC repository --------------------------------------------

COPIED = ("pyproject.toml", "Makefile", "params.yaml", ".dvcignore", ".dvc/config", "src")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make"
)
def test_make_schema_in_a_dvc_repository(tmp_path: Path) -> None:
    root = tmp_path / "project"
    for name in COPIED:
        source, target = PROJECT_ROOT / name, root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t")
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"]):
        assert _run(command, root, env).returncode == 0
    assert "schema" in _run(["make", "help"], root, env).stdout
    frame = own_table()
    frame = frame.rename(columns={"outcome": "patient's outcome"})
    outside = write(frame, tmp_path / "downloads" / "patients.csv")  # outside the project
    original = (PROJECT_ROOT / SCHEMA).read_bytes()

    usage = _run(["make", "schema", "RUN=", f"DATA={outside}"], root, env)
    assert usage.returncode != 0 and "usage: make schema" in usage.stderr
    refused = _run(["make", "schema", "RUN=", f"DATA={outside}", "TARGET=age"], root, env)
    assert refused.returncode != 0 and "'age'" in refused.stderr
    target = "TARGET=patient's outcome"  # a space and a quote pass through make as written
    done = _run(["make", "schema", "RUN=", f"DATA={outside}", target], root, env)
    assert done.returncode == 0, done.stdout + done.stderr

    assert (root / "data" / "raw" / "patients.csv").read_bytes() == outside.read_bytes()
    assert (root / "data" / "raw" / "patients.csv.dvc").exists()
    staged = _run(["git", "diff", "--cached", "--name-only"], root, env).stdout.split()
    assert "data/raw/patients.csv.dvc" in staged and "data/raw/patients.csv" not in staged
    schema = load(root)
    assert schema.TARGET == "patient's outcome" and "größe" in schema.FEATURES_BY_NAME
    assert (PROJECT_ROOT / SCHEMA).read_bytes() == original  # the copy's, not the installed one
