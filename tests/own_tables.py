"""Tables of each task kind as a team brings them, from datasets scikit-learn ships: breast cancer
(binary), wine (multiclass), diabetes (regression), with word labels, column names with spaces,
slashes, dots and non-ASCII letters, int, float and string columns, and 3% blanks in the
features.

It runs under a generated project's interpreter (scikit-learn, pandas and pyarrow are in its
train group), not the template's: `python tests/own_tables.py KIND PATH` writes the table and
prints what it holds as JSON (`write_table`'s answer).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = ("binary", "multiclass", "regression")
BLANK_SHARE = 0.03
SEED = 21


def _binary() -> tuple[Any, str]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(
        columns={
            "mean radius": "mean radius/mm",
            "mean texture": "mean.texture",
            "worst area": "worst area (µm²)",
        }
    )
    frame["diagnosis"] = frame.pop("target").map(dict(enumerate(data.target_names)))
    return frame, "diagnosis"


def _multiclass() -> tuple[Any, str]:
    from sklearn.datasets import load_wine

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns=lambda name: name.replace("_", " "))
    frame = frame.rename(columns={"color intensity": "Farbintensität"})
    for name in ("magnesium", "proline"):  # whole numbers: int columns
        frame[name] = frame[name].astype("int64")
    cultivars = {0: "barolo", 1: "grignolino", 2: "barbera"}
    frame["cultivar"] = frame.pop("target").map(cultivars)
    return frame, "cultivar"


def _regression() -> tuple[Any, str]:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.rename(
        columns={
            "age": "age (years)",
            "bmi": "body mass index kg/m²",
            "bp": "blood pressure/mmHg",
            "s1": "s1.tc",
        }
    )
    frame["age (years)"] = frame["age (years)"].astype("int64")
    frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
    frame["disease progression"] = frame.pop("target")
    return frame, "disease progression"


def write_table(kind: str, path: Path, fmt: str | None = None) -> dict[str, Any]:
    """Write the table of `kind` to `path` (fmt "csv" or "parquet"; default: the suffix) and
    say what it holds: target, features (in order), the features with blanks, the classes
    (sorted, as text; empty for regression)."""
    import numpy as np

    frame, target = {"binary": _binary, "multiclass": _multiclass, "regression": _regression}[
        kind
    ]()
    rng = np.random.default_rng(SEED)
    # A string column in every table, then blanks in every feature.
    frame.insert(0, "clinic/site", rng.choice(["Nord", "Süd", "West"], len(frame)))
    features = [name for name in frame.columns if name != target]
    for name in features:
        blank = rng.random(len(frame)) < BLANK_SHARE
        if frame[name].dtype.kind == "i":
            frame[name] = frame[name].astype("Int64")
        elif frame[name].dtype.kind == "O":
            frame[name] = frame[name].astype(object)
        frame.loc[blank, name] = None
    fmt = fmt or Path(path).suffix.lstrip(".")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, lineterminator="\n")
    classes = [] if kind == "regression" else sorted(str(c) for c in frame[target].unique())
    return {
        "target": target,
        "features": features,
        "blank": [name for name in features if frame[name].isna().any()],
        "int": [name for name in features if str(frame[name].dtype) == "Int64"],
        "classes": classes,
        "rows": len(frame),
    }


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(write_table(kind, out, sys.argv[3] if len(sys.argv) > 3 else None)))
