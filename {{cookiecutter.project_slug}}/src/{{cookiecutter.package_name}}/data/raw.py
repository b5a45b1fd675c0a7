"""The raw dataset as DVC versions it: a data file at `params.yaml` `data.raw` and its
committed pointer `<file>.dvc` next to it.

`make data` writes the example data and `dvc add`s it; `make pipeline` does that first when
no pointer exists yet. Before a stage reads the file, `problem()` names what is wrong with it
(missing, or not the content its pointer records) in one line that says how to fix it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML, YAMLError

FIX = "run `uv run dvc pull` to fetch the versioned file, or `make data` for the example data"


def pointer(path: Path) -> Path:
    """The DVC pointer of a data file: `data/raw/x.csv` -> `data/raw/x.csv.dvc`."""
    return path.with_name(path.name + ".dvc")


def recorded_md5(path: Path) -> str | None:
    """The md5 the pointer of `path` records, or None without a (readable) pointer."""
    try:
        outs = YAML(typ="safe").load(pointer(path).read_text(encoding="utf-8"))["outs"]
        return str(next(out["md5"] for out in outs if out["path"] == path.name))
    except (OSError, YAMLError, KeyError, TypeError, StopIteration):
        return None


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problem(path: Path) -> str | None:
    """One line naming what is wrong with the data file, or None when it can be read."""
    tracked = pointer(path).exists()
    if not path.exists():
        if tracked:
            return f"{path} is missing (its DVC pointer {pointer(path).name} is there): {FIX}"
        return f"{path} not found: {FIX}"
    expected = recorded_md5(path) if tracked else None
    if expected is not None and file_md5(path) != expected:
        return (
            f"{path} differs from the version its pointer {pointer(path).name} records "
            f"(replaced or corrupt): `uv run dvc add {path}` to version this content, or {FIX}"
        )
    return None


def dvc_add(path: Path) -> None:
    """`dvc add` the file (writes the pointer; git-stages it when the project is a git repo)."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "add", "--quiet", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise RuntimeError(f"dvc add {path} failed: {reason}")


def pipeline_problem(path: Path) -> str | None:
    """What `make pipeline` checks before `dvc repro` (which would otherwise record a replaced
    or corrupt file as a new version by itself): a file without a pointer is the user's and
    is never overwritten; a tracked file must be the version its pointer records."""
    if path.exists() and not pointer(path).exists():
        return (
            f"{path} is not tracked by DVC: `uv run dvc add {path}` and commit "
            f"{pointer(path)} (or delete the file and run `make data` for the example data)"
        )
    return problem(path) if pointer(path).exists() else None
