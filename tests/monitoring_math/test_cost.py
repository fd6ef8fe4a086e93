"""Cost maths on hand-computed examples: quantities, OpenCost allocation, windows, budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitoring import cost
from monitoring.cost import BudgetState, CostRates, UsageSample

RATES = CostRates(vcpu_hour=0.04, gib_hour=0.005, gpu_hour=2.5)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("250m", 0.25), ("1", 1.0), ("1.5", 1.5), ("2k", 2000.0), ("1e3", 1000.0), (2, 2.0)],
)
def test_it_parses_cpu_quantities(quantity: str, expected: float) -> None:
    assert cost.parse_cpu(quantity) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("quantity", "expected_gib"),
    [("512Mi", 0.5), ("1Gi", 1.0), ("2048Ki", 2048 / 2**20), ("1G", 1e9 / 2**30)],
)
def test_it_parses_memory_quantities(quantity: str, expected_gib: float) -> None:
    assert cost.parse_memory_gib(quantity) == pytest.approx(expected_gib)


@pytest.mark.parametrize("quantity", ["", "-1", "abc", "m", "1Xi", "NaN", "Infinity"])
def test_it_rejects_malformed_quantities(quantity: str) -> None:
    with pytest.raises(ValueError):
        cost.parse_quantity(quantity)


def test_hourly_cost_charges_the_request_when_usage_is_lower() -> None:
    # 3 x (0.5 cores x 0.04 + 2 GiB x 0.005) = 3 x 0.03 = 0.09
    value = cost.hourly_cost(0.5, 0.2, 2.0, 1.0, gpus=0, replicas=3, rates=RATES)
    assert value == pytest.approx(0.09)


def test_hourly_cost_charges_usage_above_the_request_and_gpus() -> None:
    # 2 x (1.5 cores x 0.04 + 4 GiB x 0.005 + 1 GPU x 2.5) = 2 x 2.58 = 5.16
    value = cost.hourly_cost("500m", 1.5, "1Gi", 4.0, gpus=1, replicas=2, rates=RATES)
    assert value == pytest.approx(5.16)


def test_zero_replicas_cost_nothing() -> None:
    assert cost.hourly_cost(1, 1, 1, 1, gpus=1, replicas=0, rates=RATES) == 0.0


def test_window_cost_holds_each_sample_until_the_next() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    samples = [
        # 2 replicas x (1 core x 0.04 + 1 GiB x 0.005) = 0.09/h for 1 h
        UsageSample(
            start, replicas=2, cpu_request=1, cpu_usage=0.5, mem_request_gib=1, mem_usage_gib=0.5
        ),
        # 4 replicas x 0.045 = 0.18/h for 30 min
        UsageSample(
            start + timedelta(hours=1),
            replicas=4,
            cpu_request=1,
            cpu_usage=0.5,
            mem_request_gib=1,
            mem_usage_gib=0.5,
        ),
    ]
    end = start + timedelta(hours=1, minutes=30)
    assert cost.window_cost(samples, RATES, end=end) == pytest.approx(0.09 + 0.09)
    assert cost.window_cost(samples, RATES) == pytest.approx(0.09)


def test_window_cost_rejects_samples_out_of_order() -> None:
    samples = [UsageSample(100.0, 1, 1, 1, 1, 1), UsageSample(50.0, 1, 1, 1, 1, 1)]
    with pytest.raises(ValueError, match="time order"):
        cost.window_cost(samples, RATES)


def test_cost_per_1000_predictions() -> None:
    assert cost.cost_per_1000(2.5, 50_000) == pytest.approx(0.05)
    assert cost.cost_per_1000(2.5, 0) is None


@pytest.mark.parametrize(
    ("spent", "state"),
    [
        (79.0, BudgetState.OK),
        (80.0, BudgetState.WARNING),
        (99.99, BudgetState.WARNING),
        (100.0, BudgetState.EXCEEDED),
        (130.0, BudgetState.EXCEEDED),
    ],
)
def test_budget_thresholds(spent: float, state: BudgetState) -> None:
    status = cost.budget_status(spent, 100.0)
    assert status.state is state
    assert status.share == pytest.approx(spent / 100.0)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        cost.budget_status(10.0, 0.0)


def test_rates_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        CostRates(vcpu_hour=-1.0, gib_hour=0.0)
