"""Drift statistics of a live sample against a reference profile, vectorised with numpy.

* PSI (population stability index) per feature: sum over bins of (live - ref) * ln(live / ref)
  on the reference's bins. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a shift.
  A finite window of an unchanged population has PSI of about (bins - 1) / n, so small
  windows read higher; the alert rules require a minimum window.
* KS statistic for the score: the largest gap between the live empirical CDF and the
  reference CDF (interpolated from the holdout's percentiles), the one-sample statistic that
  `scipy.stats.kstest` computes (the tests check it against scipy; the serve image has no
  scipy).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .profile import (
    CategoricalReference,
    NumericReference,
    Profile,
    blank_count,
    categorical_counts,
    numeric_counts,
)

# Empty bins (live or reference) are floored at this share, so PSI stays finite.
PSI_EPSILON = 1e-4
# Alerting and the report use the same values; monitoring/prometheus/rules.yml repeats them
# as its threshold series and tests/drift keeps the two equal.
PSI_THRESHOLD = 0.2
SCORE_KS_THRESHOLD = 0.1


def psi(reference: Any, counts: Any) -> float:
    """PSI of live bin `counts` against reference bin shares (same bins)."""
    expected = np.maximum(np.asarray(reference, dtype=np.float64), PSI_EPSILON)
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    actual = np.maximum(counts / total, PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(scores: Any, quantiles: Any) -> float:
    """sup |F_live - F_ref| with F_ref the piecewise-linear CDF through the reference
    quantiles (evenly spaced levels 0..1)."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        return 0.0
    q = np.asarray(quantiles, dtype=np.float64)
    cdf = np.interp(x, q, np.linspace(0, 1, q.size))
    above = np.arange(1, n + 1) / n - cdf
    below = cdf - np.arange(0, n) / n
    return float(max(np.max(above), np.max(below)))


def reference_shares(ref: NumericReference | CategoricalReference) -> list[float]:
    """The reference's bin shares over all rows, the blank share last: the bins `live_counts`
    counts (a feature without blanks has 0 there on both sides, adding nothing to PSI)."""
    present = 1.0 - ref.missing
    return [*(share * present for share in ref.fractions), ref.missing]


def live_counts(profile: Profile, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Live counts per feature on the profile's bins (categorical: `other`), blanks last."""
    counts: dict[str, np.ndarray] = {}
    for name, ref in profile.numeric.items():
        values = columns[name]
        counts[name] = np.append(
            numeric_counts(values, np.asarray(ref.edges)), blank_count(values, "numeric")
        )
    for name, cat in profile.categorical.items():
        values = columns[name]
        counts[name] = np.append(
            categorical_counts(values, cat.categories), blank_count(values, "categorical")
        )
    return counts


def feature_psi(profile: Profile, columns: Mapping[str, Any]) -> dict[str, float]:
    """PSI per feature of the live `columns` (a DataFrame or a mapping of arrays)."""
    references = {
        **{n: reference_shares(r) for n, r in profile.numeric.items()},
        **{n: reference_shares(r) for n, r in profile.categorical.items()},
    }
    return {
        name: psi(references[name], counts)
        for name, counts in live_counts(profile, columns).items()
    }


def score_ks(profile: Profile, scores: Any) -> float:
    return ks_statistic(scores, profile.score.quantiles)
