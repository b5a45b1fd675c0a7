"""Blanks of nullable features in the drift reference and the live statistics: a share per
feature, never a NaN in the stored profile, one more bin in PSI."""

from __future__ import annotations

import json

import numpy as np

from {{ cookiecutter.package_name }}.drift import stats
from {{ cookiecutter.package_name }}.drift.profile import Profile, build_profile
from {{ cookiecutter.package_name }}.schema import Feature

FEATURES = (
    Feature("mean radius/mm", "numeric", "", minimum=0, maximum=40, nullable=True),
    Feature("clinic/site", "categorical", "", "str", categories=("Nord", "Süd"), nullable=True),
)


def _columns(rows: int, blank_share: float, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    radius = rng.uniform(5, 30, rows)
    site = rng.choice(["Nord", "Süd"], rows).astype(object)
    radius[rng.random(rows) < blank_share] = np.nan
    site[rng.random(rows) < blank_share] = None  # a request's null ("" from the loader)
    return {"mean radius/mm": radius, "clinic/site": site}


def _profile(blank_share: float) -> Profile:
    scores = np.random.default_rng(0).random(500)
    return build_profile(_columns(4000, blank_share, 1), scores, features=FEATURES)


def test_profile_counts_the_blank_share_and_stores_no_nan() -> None:
    profile = _profile(0.1)
    text = json.dumps(profile.to_dict(), allow_nan=False)  # raises on a NaN
    numeric = profile.numeric["mean radius/mm"]
    categorical = profile.categorical["clinic/site"]
    assert 0.08 < numeric.missing < 0.12 and 0.08 < categorical.missing < 0.12
    assert len(numeric.edges) == 9  # deciles of the present values
    assert abs(sum(numeric.fractions) - 1) < 1e-9 and abs(sum(categorical.fractions) - 1) < 1e-9
    assert Profile.from_dict(json.loads(text)) == profile


def test_profile_without_the_missing_field_reads_as_no_blanks() -> None:
    data = _profile(0.0).to_dict()
    for section in ("numeric", "categorical"):
        for reference in data[section].values():
            assert reference.pop("missing") == 0.0
    assert Profile.from_dict(data).numeric["mean radius/mm"].missing == 0.0


def test_psi_sees_a_change_in_the_blank_share_only() -> None:
    profile = _profile(0.1)
    same = stats.feature_psi(profile, _columns(4000, 0.1, 2))
    more_blanks = stats.feature_psi(profile, _columns(4000, 0.5, 3))
    assert max(same.values()) < 0.02, same
    assert min(more_blanks.values()) > stats.PSI_THRESHOLD, more_blanks


def test_a_live_window_of_records_with_nulls_is_counted_as_blanks() -> None:
    from {{ cookiecutter.package_name }}.drift.monitor import window_columns

    profile = _profile(0.1)
    records = [{"mean radius/mm": None, "clinic/site": None}] * 10 + [
        {"mean radius/mm": 10.0, "clinic/site": "Nord"}
    ] * 90
    counts = stats.live_counts(profile, window_columns(profile, records))
    assert counts["mean radius/mm"][-1] == 10 and counts["mean radius/mm"].sum() == 100
    assert counts["clinic/site"][-1] == 10 and counts["clinic/site"].sum() == 100
