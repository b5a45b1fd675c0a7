"""The reference profile: quantile bins, category shares with `other`, holdout score, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.data.generate import generate
from {{ cookiecutter.package_name }}.drift.profile import (
    Profile,
    bin_index,
    build_profile,
    categorical_counts,
    quantile_edges,
)
from {{ cookiecutter.package_name }}.schema import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

from .traffic import reference_profile


def test_every_feature_is_profiled_with_shares_summing_to_one() -> None:
    profile = reference_profile()
    assert set(profile.numeric) == set(NUMERIC_FEATURES)
    assert set(profile.categorical) == set(CATEGORICAL_FEATURES)
    for ref in [*profile.numeric.values(), *profile.categorical.values(), profile.score]:
        assert sum(ref.fractions) == pytest.approx(1.0)
    for ref in profile.numeric.values():
        assert len(ref.fractions) == len(ref.edges) + 1
        assert np.all(np.diff(ref.edges) > 0)


def test_continuous_features_get_deciles_and_discrete_ones_fewer_bins() -> None:
    profile = reference_profile()
    amount = profile.numeric["amount"]
    assert len(amount.fractions) == 10
    assert amount.fractions == pytest.approx([0.1] * 10, abs=0.002)
    # foreign_transaction is 0/1: one cut point, two bins, no empty ones
    foreign = profile.numeric["foreign_transaction"]
    assert foreign.edges == [0.0]
    assert foreign.fractions[1] == pytest.approx(0.05, abs=0.01)


def test_bins_are_open_at_both_ends() -> None:
    edges = quantile_edges(np.arange(100.0), 4)
    assert bin_index(np.array([-1e9, edges[0], edges[0] + 1e-9, 1e9]), edges).tolist() == [
        0,
        0,
        1,
        len(edges),
    ]


def test_unknown_categories_count_as_other() -> None:
    values = ["fuel", "fuel", "__unknown__", "crypto", "travel"]
    counts = categorical_counts(values, ["fuel", "travel"])
    assert counts.tolist() == [2, 1, 2]


def test_category_shares_match_the_training_data() -> None:
    frame = generate(20_000, 1)
    profile = build_profile(frame, np.full(10, 0.5))
    merchant = profile.categorical["merchant_category"]
    expected = frame["merchant_category"].value_counts(normalize=True)
    for category, share in zip(merchant.categories, merchant.fractions, strict=False):
        assert share == pytest.approx(expected[category])
    assert merchant.fractions[-1] == 0.0  # training data has no category outside the schema


def test_round_trip_through_a_small_json_file(tmp_path: Path) -> None:
    profile = reference_profile()
    path = profile.save(tmp_path / "drift" / "reference.json")
    assert path.stat().st_size < 16_000  # kilobytes, versioned with every model
    assert Profile.load(path) == profile
    data = json.loads(path.read_text())
    assert len(data["score"]["quantiles"]) == 101


def test_a_profile_of_another_format_is_refused(tmp_path: Path) -> None:
    data = reference_profile().to_dict()
    data["format_version"] = 99
    with pytest.raises(ValueError, match="format_version 99"):
        Profile.from_dict(data)


def test_bad_input_is_refused() -> None:
    frame = generate(100, 1)
    with pytest.raises(ValueError, match="scores is empty"):
        build_profile(frame, [])
    with pytest.raises(ValueError, match="bins"):
        build_profile(frame, [0.5], bins=1)
    assert len(FEATURES) == len(build_profile(frame, [0.5]).features)
