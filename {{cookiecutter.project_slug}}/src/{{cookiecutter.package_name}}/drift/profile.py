"""The reference profile of a model version: what its training data and holdout scores looked
like, small enough (kilobytes of JSON) to log with every run and load with every model.

* numeric feature: fixed bins cut at the training quantiles (inner edges; the outer bins are
  open, so live values beyond the training range still land somewhere) and the training share
  of each bin;
* categorical feature: the share of each schema category plus an `other` bucket (unknown
  categories at serving time, anything the schema does not list);
* blanks (a nullable feature's missing values): their share of the rows, `missing`; bins and
  categories describe the present values only, so no NaN ever reaches the edges;
* score: quantiles of the predicted fraud probability on the holdout (the reference CDF of the
  KS statistic) and its share per bin (the histograms of the report).

Only numpy: the server loads it without pandas.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import FEATURES, Feature

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Where the profile lives among the artifacts of the training run of a registered version.
ARTIFACT_DIR = "drift"
ARTIFACT_FILE = "reference.json"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{ARTIFACT_FILE}"
OTHER = "other"
DEFAULT_BINS = 10  # deciles: the usual resolution of PSI
SCORE_QUANTILES = 101  # percentiles 0..100 of the holdout score


@dataclass(frozen=True)
class NumericReference:
    edges: list[float]  # inner cut points, strictly increasing; len(fractions) == len(edges) + 1
    fractions: list[float]  # of the present values
    missing: float = 0.0  # share of blank rows (absent in profiles written before blanks)


@dataclass(frozen=True)
class CategoricalReference:
    categories: list[str]  # the schema's categories; the last fraction is `other`
    fractions: list[float]  # of the present values
    missing: float = 0.0  # share of blank rows


@dataclass(frozen=True)
class ScoreReference:
    quantiles: list[float]  # SCORE_QUANTILES evenly spaced levels from 0 to 1
    edges: list[float]
    fractions: list[float]


@dataclass(frozen=True)
class Profile:
    rows: int
    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    score: ScoreReference
    format_version: int = FORMAT_VERSION

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"reference profile format_version {version!r}, expected 1")
        return cls(
            rows=int(data["rows"]),
            numeric={k: NumericReference(**v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalReference(**v) for k, v in data["categorical"].items()},
            score=ScoreReference(**data["score"]),
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Profile:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner cut points at the quantiles of `values`; ties collapse (an integer feature with
    few distinct values gets fewer, wider bins instead of empty ones)."""
    inner = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: bin i holds edges[i-1] < x <= edges[i] (open at both ends)."""
    return np.searchsorted(edges, values, side="left")


def _present(values: Any) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    return x[~np.isnan(x)]


def numeric_counts(values: Any, edges: np.ndarray) -> np.ndarray:
    """Counts per bin of the present values (NaN, a blank, is counted by `blank_count`)."""
    return np.bincount(bin_index(_present(values), edges), minlength=len(edges) + 1)


def is_blank(value: Any) -> bool:
    """A categorical blank: None (a request's null), "" (the data loader's) or NaN."""
    return value is None or value == "" or (isinstance(value, float) and value != value)


def categorical_counts(values: Iterable[Any], categories: Sequence[str]) -> np.ndarray:
    """Counts per category of the present values, `other` last (Counter: no sort of an
    object array)."""
    position = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    for value, count in Counter(values).items():
        if not is_blank(value):
            counts[position.get(str(value), len(categories))] += count
    return counts


def blank_count(values: Any, kind: str) -> int:
    if kind == "numeric":
        return int(np.isnan(np.asarray(values, dtype=np.float64)).sum())
    return sum(1 for value in values if is_blank(value))


def _fractions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def _share(part: int, rows: int) -> float:
    return part / rows if rows else 0.0


def _numeric(values: np.ndarray, bins: int) -> NumericReference:
    present = _present(values)
    edges = quantile_edges(present, bins) if present.size else np.array([])
    return NumericReference(
        edges.tolist(),
        _fractions(numeric_counts(present, edges)),
        _share(len(values) - present.size, len(values)),
    )


def _categorical(values: Any, feature: Feature) -> CategoricalReference:
    categories = list(feature.categories)
    return CategoricalReference(
        categories,
        _fractions(categorical_counts(values, categories)),
        _share(blank_count(values, "categorical"), len(values)),
    )


def build_profile(
    columns: Mapping[str, Any],
    scores: Any,
    bins: int = DEFAULT_BINS,
    features: tuple[Feature, ...] = FEATURES,
) -> Profile:
    """Profile of the training columns (a DataFrame or a mapping of arrays) and the fraud
    probabilities the model gives the holdout."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    score = np.asarray(scores, dtype=np.float64).ravel()
    if score.size == 0:
        raise ValueError("scores is empty: the profile needs the holdout's predictions")
    numeric: dict[str, NumericReference] = {}
    categorical: dict[str, CategoricalReference] = {}
    rows = 0
    for feature in features:
        values = np.asarray(columns[feature.name])
        rows = len(values)
        if feature.kind == "numeric":
            numeric[feature.name] = _numeric(values.astype(np.float64), bins)
        else:
            categorical[feature.name] = _categorical(values, feature)
    levels = np.linspace(0, 1, SCORE_QUANTILES)
    score_edges = quantile_edges(score, bins)
    return Profile(
        rows=rows,
        numeric=numeric,
        categorical=categorical,
        score=ScoreReference(
            quantiles=np.quantile(score, levels).tolist(),
            edges=score_edges.tolist(),
            fractions=_fractions(numeric_counts(score, score_edges)),
        ),
    )


def log_profile(profile: Profile) -> None:
    """Log the profile as `drift/reference.json` of the active MLflow run (the training run
    of the version it describes)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = profile.save(Path(tmp) / ARTIFACT_FILE)
        mlflow.log_artifact(str(path), artifact_path=ARTIFACT_DIR)


def download_profile(run_id: str, tracking_uri: str) -> Profile | None:
    """The reference profile logged in the training run, or None (a version trained before
    profiles existed, or an unreadable file: the model is served without drift gauges)."""
    import mlflow

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=ARTIFACT_PATH,
                dst_path=tmp,
                tracking_uri=tracking_uri,
            )
            return Profile.load(Path(path))
    except Exception as exc:  # a missing profile must never stop the model from serving
        log.warning("no drift reference for run %s (%s): drift gauges off", run_id, exc)
        return None
