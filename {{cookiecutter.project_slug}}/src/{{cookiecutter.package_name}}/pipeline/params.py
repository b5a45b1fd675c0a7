"""`params.yaml` (read and, for `tune`, written back with comments kept) and project paths."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

# Keep BLAS/OpenMP from oversubscribing small machines; a value set by the user wins.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, str(min(os.cpu_count() or 1, 4)))


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_params(path: Path = Path("params.yaml")) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run from the project root")
    with path.open(encoding="utf-8") as handle:
        data = _yaml().load(handle) or {}
    return _plain(data)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def update_section(path: Path, section: str, values: dict[str, Any]) -> None:
    """Set `section.<key>` for each value, keeping the file's comments and order."""
    yaml = _yaml()
    with Path(path).open(encoding="utf-8") as handle:
        data = yaml.load(handle)
    for key, value in values.items():
        data[section][key] = value
    with Path(path).open("w", encoding="utf-8") as handle:
        yaml.dump(data, handle)


@dataclass(frozen=True)
class Paths:
    """Where the stages read and write, relative to the project root."""

    root: Path
    raw: Path

    @classmethod
    def from_params(cls, root: Path, params: dict[str, Any]) -> Paths:
        return cls(root=root, raw=root / params["data"]["raw"])

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def train_split(self) -> Path:
        return self.prepared / "train.parquet"

    @property
    def test_split(self) -> Path:
        return self.prepared / "test.parquet"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def train_report(self) -> Path:
        return self.reports / "train.json"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics.json"

    @property
    def promotion(self) -> Path:
        return self.reports / "promotion.json"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"
