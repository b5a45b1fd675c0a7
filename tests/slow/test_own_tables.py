"""Slow tier: `make schema` in a generated project on a team's own table of each task kind
(tests/own_tables.py: word labels, names with spaces, slashes and non-ASCII letters, 3% blanks),
as CSV and as Parquet. The project's task is `TASK` in its schema.py; a table of another kind
is refused in one line. The binary table then goes through training, serving and a prediction
(tests/own_table_serve.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Baked
from tests.own_tables import KINDS

pytestmark = pytest.mark.slow

OWN_TABLES = Path(__file__).resolve().parents[1] / "own_tables.py"
OWN_TABLE_SERVE = Path(__file__).resolve().parents[1] / "own_table_serve.py"
# What the inferred schema.py declares, read by the project's own interpreter.
DECLARED = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("declared", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["declared"] = module
spec.loader.exec_module(module)
print(json.dumps({
    "task": module.TASK, "target": module.TARGET, "classes": list(module.CLASS_NAMES),
    "features": [[f.name, f.kind, f.dtype, f.nullable] for f in module.FEATURES],
}))
"""


def _set_task(schema: Path, task: str) -> None:
    lines = schema.read_text(encoding="utf-8").splitlines(keepends=True)
    schema.write_text(
        "".join(f'TASK = "{task}"\n' if line.startswith("TASK = ") else line for line in lines),
        encoding="utf-8",
    )


def test_make_schema_on_a_table_of_each_task_kind(bake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project: Baked = bake(project_name="Own Tables")
    # Inference needs the train group only (pandas, pyarrow, DVC).
    project.run("uv", "venv", "--quiet", ".venv", timeout=300)
    project.run(
        "uv", "pip", "install", "--quiet", "--python", ".venv/bin/python", "-e", ".",
        "--group", "train", timeout=1500,
    )  # fmt: skip
    venv = project.path / ".venv" / "bin"
    env = {"PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv.parent)}
    schema = project.path / "src" / project.package / "schema.py"

    for kind in KINDS:
        for fmt in ("csv", "parquet"):
            table = tmp_path / "downloads" / f"{kind}.{fmt}"  # outside: copied to data/raw/
            held = json.loads(
                project.run(str(venv / "python"), str(OWN_TABLES), kind, str(table), env=env).stdout
            )
            _set_task(schema, kind)
            project.run(
                "make", "schema", "RUN=", f"DATA={table}", f"TARGET={held['target']}", env=env
            )
            declared = json.loads(
                project.run(str(venv / "python"), "-c", DECLARED, str(schema), env=env).stdout
            )
            where = f"{kind} ({fmt})"
            assert declared["task"] == kind, where
            assert declared["target"] == held["target"], where
            assert declared["classes"] == held["classes"], where
            names = [f[0] for f in declared["features"]]
            assert names == held["features"], where
            nullable = [f[0] for f in declared["features"] if f[3]]
            assert nullable == held["blank"], where
            ints = [f[0] for f in declared["features"] if f[2] == "int"]
            assert ints == held["int"], where
            kinds = {f[0]: f[1] for f in declared["features"]}
            assert kinds["clinic/site"] == "categorical", where
            assert (project.path / "data" / "raw" / f"{kind}.{fmt}.dvc").exists(), where
            # The same inference again writes the same file.
            before = schema.read_bytes()
            project.run(
                "make", "schema", "RUN=", f"DATA={table}", f"TARGET={held['target']}", env=env
            )
            assert schema.read_bytes() == before, where

    # A table of another kind than the project's task: one line, nothing written.
    _set_task(schema, "binary")
    before = schema.read_bytes()
    table = tmp_path / "downloads" / "multiclass.csv"
    refused = project.run(
        "make", "schema", "RUN=", f"DATA={table}", "TARGET=cultivar", env=env, check=False
    )
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert refused.returncode != 0 and len(errors) == 1, refused.stderr
    assert "'cultivar'" in errors[0] and "task=multiclass" in errors[0]
    assert schema.read_bytes() == before


def test_binary_table_with_blanks_and_odd_names_trains_serves_and_predicts(  # type: ignore[no-untyped-def]
    bake, tmp_path: Path
) -> None:
    """`make schema` on the breast-cancer table (word labels, names with spaces, `/`, dots and
    `µ²`, 3% blanks in every feature), the pipeline with the project's small sizes, the server:
    a record with one field null and one absent is answered in the table's own names, and the
    model reaches what gradient boosting reaches on that data."""
    project: Baked = bake(project_name="Own Binary Table")
    project.run("uv", "venv", "--quiet", ".venv", timeout=300)
    project.run(
        "uv", "pip", "install", "--quiet", "--python", ".venv/bin/python", "-e", ".",
        "--group", "train", "--group", "serve", "--group", "dev", timeout=1500,
    )  # fmt: skip
    venv = project.path / ".venv" / "bin"
    env = {"PATH": f"{venv}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(venv.parent)}
    table = tmp_path / "downloads" / "binary.csv"
    held = json.loads(
        project.run(str(venv / "python"), str(OWN_TABLES), "binary", str(table), env=env).stdout
    )
    project.run("make", "schema", "RUN=", f"DATA={table}", f"TARGET={held['target']}", env=env)

    raw = project.path / "data" / "raw" / table.name
    served = json.loads(
        project.run(str(venv / "python"), str(OWN_TABLE_SERVE), str(raw), env=env).stdout
    )
    assert served["flavor"] == "onnx"  # the graph takes the odd names and imputes the blanks
    assert served["promotion"] == "promoted"
    assert served["metrics"]["roc_auc"] > 0.95, served["metrics"]
    record = served["record"]
    assert any(value is None for value in record.values())
    assert len(record) == len(held["features"]) - 1  # one nullable field left out
    assert served["status"] == 200, served["body"]
    assert set(served["body"]["probabilities"]) == set(held["classes"])
    assert sum(served["body"]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert served["body"]["label"] in held["classes"]
    # the request schema speaks the table's names: a name with `/`, one with `µ²`
    assert '"mean radius/mm"' in served["openapi"]
    assert '"worst area (µm²)"' in served["openapi"]
