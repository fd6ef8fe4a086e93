"""SLO maths: error budget, the multiwindow multi-burn-rate alert matrix, latency SLIs."""

from __future__ import annotations

import pytest

from monitoring import slo
from monitoring.slo import Severity


def test_error_budget_on_a_hand_computed_case() -> None:
    # 1,000,000 requests at 99.9%: 1,000 bad allowed; 250 bad is a quarter of the budget.
    budget = slo.error_budget(0.999, good=999_750, total=1_000_000)
    assert budget.allowed == pytest.approx(1_000)
    assert budget.bad == 250
    assert budget.consumed == pytest.approx(0.25)
    assert budget.remaining == pytest.approx(0.75)


def test_an_overspent_budget_goes_negative() -> None:
    budget = slo.error_budget(0.99, good=970, total=1_000)
    assert budget.consumed == pytest.approx(3.0)
    assert budget.remaining == pytest.approx(-2.0)


def test_no_traffic_leaves_the_whole_budget() -> None:
    assert slo.error_budget(0.999, good=0, total=0).remaining == 1.0


def test_error_budget_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        slo.error_budget(0.999, good=11, total=10)
    with pytest.raises(ValueError):
        slo.error_budget(1.0, good=1, total=1)


def test_burn_rate() -> None:
    assert slo.burn_rate(0.001, 0.999) == pytest.approx(1.0)
    assert slo.burn_rate(0.0144, 0.999) == pytest.approx(14.4)


def _ratios(**burns: float) -> dict[str, float]:
    """Window -> error ratio for the given burn rates at a 99.9% objective."""
    return {window.removeprefix("w"): burn * 0.001 for window, burn in burns.items()}


@pytest.mark.parametrize(
    ("burns", "expected"),
    [
        # fast burn on both 1h and 5m pages
        ({"w1h": 15, "w5m": 20, "w6h": 2, "w30m": 2, "w3d": 0.5}, [("page", "1h", "5m")]),
        # 1h burning but 5m recovered: no page (the short window resets the alert)
        ({"w1h": 15, "w5m": 3, "w6h": 2, "w30m": 2, "w3d": 0.5}, []),
        # exactly at the threshold does not fire (strictly greater)
        ({"w1h": 14.4, "w5m": 14.4, "w6h": 1, "w30m": 1, "w3d": 0.5}, []),
        # slower burn pages on 6h and 30m
        ({"w1h": 7, "w5m": 7, "w6h": 6.5, "w30m": 8, "w3d": 0.9}, [("page", "6h", "30m")]),
        # slow burn opens a ticket
        ({"w1h": 1.5, "w5m": 1.5, "w6h": 1.2, "w30m": 1.3, "w3d": 1.1}, [("ticket", "3d", "6h")]),
        # a sustained disaster fires every rule
        (
            {"w1h": 20, "w5m": 20, "w6h": 20, "w30m": 20, "w3d": 20},
            [("page", "1h", "5m"), ("page", "6h", "30m"), ("ticket", "3d", "6h")],
        ),
        # healthy
        ({"w1h": 0.5, "w5m": 0.5, "w6h": 0.5, "w30m": 0.5, "w3d": 0.5}, []),
    ],
)
def test_burn_rate_alert_matrix(
    burns: dict[str, float], expected: list[tuple[str, str, str]]
) -> None:
    alerts = slo.burn_rate_alerts(_ratios(**burns), objective=0.999)
    assert [(str(a.severity), a.long_window, a.short_window) for a in alerts] == expected


def test_burn_alert_carries_both_burn_rates() -> None:
    (alert,) = slo.burn_rate_alerts({"1h": 0.02, "5m": 0.03}, objective=0.999)
    assert alert.severity is Severity.PAGE
    assert alert.burn_rates == {"1h": pytest.approx(20.0), "5m": pytest.approx(30.0)}


def test_windows_are_matched_by_duration_and_missing_windows_do_not_fire() -> None:
    alerts = slo.burn_rate_alerts({"60m": 0.02, "300s": 0.02}, objective=0.999)
    assert [a.long_window for a in alerts] == ["1h"]
    assert slo.burn_rate_alerts({"1h": 0.5}, objective=0.999) == []


def test_latency_sli_is_exact_on_a_bucket_boundary() -> None:
    buckets = {"0.1": 900, "0.25": 980, "0.5": 995, "+Inf": 1000}
    sli = slo.latency_sli(buckets, target_seconds=0.25)
    assert sli.ratio == pytest.approx(0.98)
    assert sli.exact


def test_latency_sli_interpolates_inside_a_bucket() -> None:
    buckets = [("0.1", 900), ("0.2", 1000), ("+Inf", 1000)]
    sli = slo.latency_sli(buckets, target_seconds=0.15)
    assert sli.good == pytest.approx(950)
    assert not sli.exact


def test_latency_sli_without_requests_has_no_ratio() -> None:
    assert slo.latency_sli({"0.1": 0, "+Inf": 0}, 0.1).ratio is None
