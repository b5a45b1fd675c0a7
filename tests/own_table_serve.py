"""A generated project, after `make schema` on a team's table, trained and served: run from the
project root under its interpreter (`python tests/own_table_serve.py TABLE`), it trains with the
small sizes of the project's own suite (its `tests/conftest.py: SMALL`) into a SQLite store
under the root, serves the champion (the app in a TestClient, the project's own serving
fixtures), predicts one record of the table with one nullable field null and one absent, and
prints what happened as JSON.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

MODEL = "own-table"


def _small_params(root: Path) -> None:
    """The project's params.yaml with the small sizes its own suite trains with."""
    from ruamel.yaml import YAML

    from tests.conftest import SMALL  # the project's

    yaml = YAML()
    path = root / "params.yaml"
    params = yaml.load(path.read_text(encoding="utf-8"))
    for section, values in SMALL.items():
        for key, value in values.items():
            if section in params and (section != "train" or key in params["train"]):
                params[section][key] = value
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(params, handle)


def _record(table: Path, nullable: list[str]) -> dict[str, Any]:
    """A row of the table in its own names: the first nullable feature null, the second
    absent."""
    import pandas as pd

    frame = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    row = frame.dropna().iloc[0].to_dict()
    record: dict[str, Any] = {}
    for name, value in row.items():
        value = value.item() if hasattr(value, "item") else value
        record[str(name)] = None if isinstance(value, float) and math.isnan(value) else value
    record[nullable[0]] = None
    record.pop(nullable[1])
    return record


def main(table: Path) -> dict[str, Any]:
    root = Path.cwd()
    sys.path.insert(0, str(root))  # the project's tests package
    _small_params(root)
    from tests.conftest import small_context
    from tests.serving.conftest import make_settings, running

    schema = __import__(f"{_package(root)}.schema", fromlist=["FEATURES"])
    nullable = [f.name for f in schema.FEATURES if f.nullable]
    ctx = small_context(root, model_name=MODEL)
    workflow = __import__(f"{_package(root)}.pipeline.workflow", fromlist=["run_pipeline"])
    result = workflow.run_pipeline(ctx, generate_data=False)  # the table data.raw points at
    record = _record(table, nullable)
    record.pop(schema.TARGET, None)
    settings = make_settings(ctx.settings.mlflow_tracking_uri, MODEL, root / "serving")
    with running(settings) as client:
        answer = client.post("/predict", json=record)
        openapi = client.get("/openapi.json").json()
    return {
        "flavor": result.train.flavor,
        "metrics": result.metrics,
        "promotion": result.promotion["decision"],
        "record": record,
        "status": answer.status_code,
        "body": answer.json(),
        "openapi": json.dumps(openapi, ensure_ascii=False),
        "nullable": nullable,
    }


def _package(root: Path) -> str:
    (package,) = [p.parent.name for p in (root / "src").glob("*/schema.py")]
    return package


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
