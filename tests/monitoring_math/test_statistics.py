"""Canary statistics: Mann-Whitney with Hodges-Lehmann CI, spread test, absolute thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deployments.analysis import Verdict
from monitoring import statistics as st


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def _latency(
    rng: np.random.Generator, n: int, shift: float = 0.0, sigma: float = 0.4
) -> np.ndarray:
    # Latency-like: right-skewed, median ~100 ms.
    return rng.lognormal(np.log(0.1), sigma, n) + shift


def test_it_detects_a_latency_increase(rng: np.random.Generator) -> None:
    control = _latency(rng, 1_000)
    canary = _latency(rng, 1_000, shift=0.02)
    result = st.mann_whitney_compare(control, canary, direction="increase_is_bad")
    assert result.verdict is Verdict.FAIL
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.estimate == pytest.approx(0.02, abs=0.006)
    assert result.effect_size is not None and result.effect_size > 0


def test_it_passes_samples_from_the_same_distribution(rng: np.random.Generator) -> None:
    result = st.mann_whitney_compare(_latency(rng, 1_000), _latency(rng, 1_000))
    assert result.verdict is Verdict.PASS
    assert result.ci_low is not None and result.ci_high is not None
    assert result.ci_low <= 0 <= result.ci_high


def test_it_passes_identical_samples_including_all_ties() -> None:
    same = np.full(50, 0.1)
    assert st.mann_whitney_compare(same, same.copy()).verdict is Verdict.PASS
    x = np.linspace(0.05, 0.2, 200)
    result = st.mann_whitney_compare(x, x.copy())
    assert result.verdict is Verdict.PASS
    assert result.estimate == 0.0


def test_a_latency_decrease_is_not_a_failure_when_increase_is_bad(
    rng: np.random.Generator,
) -> None:
    result = st.mann_whitney_compare(_latency(rng, 500), _latency(rng, 500, shift=-0.03))
    assert result.verdict is Verdict.PASS
    two_sided = st.mann_whitney_compare(
        _latency(rng, 500), _latency(rng, 500, shift=-0.03), direction="either_is_bad"
    )
    assert two_sided.verdict is Verdict.FAIL


def test_an_accuracy_drop_fails_when_decrease_is_bad(rng: np.random.Generator) -> None:
    control = rng.normal(0.90, 0.02, 300)
    canary = rng.normal(0.80, 0.02, 300)
    assert st.mann_whitney_compare(control, canary, "decrease_is_bad").verdict is Verdict.FAIL


def test_a_significant_but_trivial_shift_passes_below_the_effect_threshold(
    rng: np.random.Generator,
) -> None:
    control = rng.normal(100.0, 1.0, 5_000)
    canary = rng.normal(100.3, 1.0, 5_000)  # highly significant, but 0.3%
    result = st.mann_whitney_compare(control, canary, effect_threshold=0.05)
    assert result.p_value is not None and result.p_value < 1e-6
    assert result.verdict is Verdict.PASS


def test_too_few_samples_are_inconclusive(rng: np.random.Generator) -> None:
    result = st.mann_whitney_compare(_latency(rng, 10), _latency(rng, 10, shift=1.0))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.p_value is None
    assert "too few" in result.reason


def test_hodges_lehmann_ci_contains_the_true_shift(rng: np.random.Generator) -> None:
    covered = 0
    for _ in range(40):
        shift, low, high = st.hodges_lehmann(
            rng.exponential(1.0, 80), rng.exponential(1.0, 60) + 0.5, confidence=0.95
        )
        assert low <= shift <= high
        covered += low <= 0.5 <= high
    # 95% nominal coverage: at least 34 of 40 (a binomial lower tail far below 1e-2).
    assert covered >= 34


def test_hodges_lehmann_matches_the_median_of_all_pairwise_differences(
    rng: np.random.Generator,
) -> None:
    x, y = rng.normal(size=31), rng.normal(size=17) + 1.0
    shift, _, _ = st.hodges_lehmann(x, y)
    assert shift == pytest.approx(float(np.median(np.subtract.outer(y, x))))


def test_large_samples_use_exact_order_statistics_without_materialising(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = rng.normal(size=400), rng.normal(size=300)
    ranks = [1, 17, 60_000, 60_001, 120_000]
    materialised = st.pairwise_difference_order_statistics(x, y, ranks)
    monkeypatch.setattr(st, "_MAX_MATERIALISED_PAIRS", 0)
    assert st.pairwise_difference_order_statistics(x, y, ranks) == materialised


def test_spread_test_catches_a_wider_canary_with_the_same_median(
    rng: np.random.Generator,
) -> None:
    control = _latency(rng, 1_000, sigma=0.3)
    canary = _latency(rng, 1_000, sigma=0.6)
    assert st.mann_whitney_compare(control, canary).verdict is Verdict.PASS
    result = st.spread_compare(control, canary)
    assert result.verdict is Verdict.FAIL
    assert result.test == "brown_forsythe"
    assert result.relative_effect is not None and result.relative_effect > 0.5


def test_spread_test_passes_equal_spread(rng: np.random.Generator) -> None:
    result = st.spread_compare(_latency(rng, 1_000), _latency(rng, 1_000))
    assert result.verdict is Verdict.PASS


def test_spread_f_statistic_matches_scipy_brown_forsythe(rng: np.random.Generator) -> None:
    from scipy import stats

    control, canary = _latency(rng, 300), _latency(rng, 200, sigma=0.5)
    result = st.spread_compare(control, canary, direction="either_is_bad")
    expected = stats.levene(canary, control, center="median")
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_comparison_as_dict_is_json_serialisable(rng: np.random.Generator) -> None:
    result = st.spread_compare(_latency(rng, 100), _latency(rng, 100, sigma=0.8))
    stored = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert stored["verdict"] == "fail"
    assert stored["control_n"] == 100
    assert set(stored["control_summary"]) >= {"median", "p99", "iqr"}


def test_it_rejects_nan_samples() -> None:
    with pytest.raises(ValueError, match="NaN"):
        st.mann_whitney_compare([1.0] * 30 + [float("nan")], [1.0] * 30)


@pytest.mark.parametrize(
    ("value", "limit", "direction", "verdict"),
    [
        (0.25, 0.3, "increase_is_bad", Verdict.PASS),
        (0.3, 0.3, "increase_is_bad", Verdict.PASS),
        (0.31, 0.3, "increase_is_bad", Verdict.FAIL),
        (0.95, 0.9, "decrease_is_bad", Verdict.PASS),
        (0.85, 0.9, "decrease_is_bad", Verdict.FAIL),
        (None, 0.3, "increase_is_bad", Verdict.INCONCLUSIVE),
        (float("nan"), 0.3, "increase_is_bad", Verdict.INCONCLUSIVE),
    ],
)
def test_threshold_check(
    value: float | None, limit: float, direction: str, verdict: Verdict
) -> None:
    assert st.threshold_check(value, limit, direction).verdict is verdict


def test_threshold_check_reports_the_margin() -> None:
    assert st.threshold_check(0.2, 0.3).margin == pytest.approx(0.1)
    assert st.threshold_check(0.4, 0.3).margin == pytest.approx(-0.1)
