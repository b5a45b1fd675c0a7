"""PSI per feature and KS for the score: unshifted traffic stays under the thresholds, shifted
traffic pushes exactly the shifted features over them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from {{ cookiecutter.package_name }}.drift import stats
from {{ cookiecutter.package_name }}.drift.profile import Profile

from .traffic import SHIFTED_FEATURES, reference_profile, shifted, unshifted


@pytest.fixture(scope="module")
def profile() -> Profile:
    return reference_profile()


@pytest.mark.parametrize("rows", [500, 2000, 10_000])
@pytest.mark.parametrize("seed", [11, 12])
def test_unshifted_traffic_stays_under_the_threshold(
    profile: Profile, rows: int, seed: int
) -> None:
    values = stats.feature_psi(profile, unshifted(rows, seed))
    assert set(values) == set(profile.features)
    assert max(values.values()) < stats.PSI_THRESHOLD / 2, values


@pytest.mark.parametrize("rows", [500, 2000])
def test_shifted_traffic_pushes_exactly_the_shifted_features_over(
    profile: Profile, rows: int
) -> None:
    values = stats.feature_psi(profile, shifted(rows, 21))
    over = {name for name, value in values.items() if value > stats.PSI_THRESHOLD}
    assert over == SHIFTED_FEATURES, values


def test_psi_of_identical_shares_is_zero_and_grows_with_the_shift() -> None:
    reference = [0.25, 0.25, 0.25, 0.25]
    assert stats.psi(reference, [25, 25, 25, 25]) == pytest.approx(0.0)
    small = stats.psi(reference, [30, 25, 25, 20])
    large = stats.psi(reference, [60, 20, 10, 10])
    assert 0 < small < large
    # the textbook formula on the same shares
    a = np.array([0.6, 0.2, 0.1, 0.1])
    assert large == pytest.approx(float(np.sum((a - 0.25) * np.log(a / 0.25))))
    assert np.isfinite(stats.psi(reference, [100, 0, 0, 0]))  # empty bins stay finite
    assert stats.psi(reference, [0, 0, 0, 0]) == 0.0


def test_ks_statistic_equals_scipy_kstest(profile: Profile) -> None:
    levels = np.linspace(0, 1, len(profile.score.quantiles))

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.interp(x, profile.score.quantiles, levels)

    rng = np.random.default_rng(3)
    for sample in (rng.beta(0.5, 12, 2000), rng.beta(1.0, 6, 700), np.array([0.5])):
        expected = scipy_stats.kstest(sample, cdf).statistic
        assert stats.score_ks(profile, sample) == pytest.approx(expected, abs=1e-12)


def test_score_drift_shows_only_when_scores_move(profile: Profile) -> None:
    rng = np.random.default_rng(4)
    same = rng.beta(0.5, 12, 2000)
    assert stats.score_ks(profile, same) < stats.SCORE_KS_THRESHOLD / 2
    assert stats.score_ks(profile, same * 2) > stats.SCORE_KS_THRESHOLD
    assert stats.score_ks(profile, []) == 0.0
