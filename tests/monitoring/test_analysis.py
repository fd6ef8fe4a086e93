"""Canary analysis against a real Prometheus scraping real inference processes: a stable version
and three canaries (healthy, failing through the fault switch, slowed through it) share one
14-second traffic run, and each test judges one of them."""

from __future__ import annotations

import json
import time

import pytest

from deployments.analysis import Verdict
from monitoring.analysis import Thresholds, analyze_canary
from monitoring.sources.prometheus import PrometheusSource
from tests.monitoring.conftest import drive_traffic, warm_up

WINDOW_SECONDS = 14.0
MIN_REQUESTS = 50
# Two-second intervals give six or seven samples per side in the window; a strict alpha keeps two
# identical versions from failing on noise.
THRESHOLDS = Thresholds(
    max_error_rate=0.05,
    max_latency_p95_seconds=1.0,
    alpha=0.01,
    min_intervals=5,
    step_seconds=2.0,
)


@pytest.fixture(scope="module")
def canary_run(serve_module, prometheus_module_factory):
    stable, healthy, failing, slow = serve_module(1, 2, 3, 4)
    versions = [stable, healthy, failing, slow]
    prometheus = prometheus_module_factory([served.target for served in versions])
    warm_up(versions, prometheus)
    failing.set_faults(error_rate=0.2)
    slow.set_faults(latency_ms=150)
    codes = drive_traffic(
        {stable: 15, healthy: 15, failing: 15, slow: 15}, seconds=WINDOW_SECONDS + 1
    )
    prometheus.wait_for_scrapes(1)
    return {
        "prometheus": prometheus,
        "source": PrometheusSource(prometheus.url, timeout_seconds=5, scrape_interval_seconds=1),
        "end": time.time(),
        "versions": {"stable": stable, "healthy": healthy, "failing": failing, "slow": slow},
        "codes": codes,
    }


def _judge(run, canary: str, **overrides):
    versions = run["versions"]
    arguments = {
        "thresholds": THRESHOLDS,
        "window_seconds": WINDOW_SECONDS,
        "min_requests": MIN_REQUESTS,
        "end": run["end"],
        **overrides,
    }
    return analyze_canary(run["source"], versions["stable"].key, versions[canary].key, **arguments)


def test_a_healthy_canary_passes(canary_run):
    result = _judge(canary_run, "healthy")
    assert result.verdict is Verdict.PASS, result.reasons
    evidence = result.evidence
    assert evidence["canary_stats"]["requests"] >= MIN_REQUESTS
    assert evidence["canary_stats"]["error_rate"] == 0
    assert evidence["comparisons"]["latency_p95_shift"]["experiment_n"] >= THRESHOLDS.min_intervals
    json.dumps(evidence, allow_nan=False)  # stored on the release step as JSON


def test_a_canary_with_injected_errors_fails_on_the_error_slo(canary_run):
    result = _judge(canary_run, "failing")
    assert result.verdict is Verdict.FAIL
    assert any("error_rate" in reason and "SLO" in reason for reason in result.reasons)
    # The switch fails each request with probability 0.2.
    assert 0.06 < result.evidence["canary_stats"]["error_rate"] < 0.4
    json.dumps(result.evidence, allow_nan=False)


def test_a_canary_with_injected_latency_fails_against_stable(canary_run):
    result = _judge(canary_run, "slow")
    assert result.verdict is Verdict.FAIL
    # Within the 1 s SLO, so the rank test against stable is what catches it.
    assert result.evidence["slo_checks"]["latency_p95"]["verdict"] == "pass"
    assert any("latency_p95_shift" in reason for reason in result.reasons)
    stable, slow = result.evidence["stable_stats"], result.evidence["canary_stats"]
    assert stable["latency_p95"] < 0.05
    assert 0.1 <= slow["latency_p50"] <= 0.25  # 150 ms lands in the (0.1, 0.25] bucket


def test_a_canary_with_injected_latency_fails_a_tight_latency_slo(canary_run):
    tight = Thresholds(**{**THRESHOLDS.__dict__, "max_latency_p95_seconds": 0.1})
    result = _judge(canary_run, "slow", thresholds=tight)
    assert result.verdict is Verdict.FAIL
    assert any("latency_p95" in reason and "SLO" in reason for reason in result.reasons)


def test_too_few_requests_is_inconclusive(canary_run):
    result = _judge(canary_run, "healthy", min_requests=100_000)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any("fewer than the 100000 needed" in reason for reason in result.reasons)


def test_a_canary_prometheus_never_saw_is_inconclusive(canary_run):
    versions = canary_run["versions"]
    missing = versions["healthy"].key.__class__(versions["healthy"].key.model, 404)
    result = analyze_canary(
        canary_run["source"],
        versions["stable"].key,
        missing,
        THRESHOLDS,
        WINDOW_SECONDS,
        MIN_REQUESTS,
        end=canary_run["end"],
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "canary_stats" not in result.evidence


def test_prometheus_stopped_mid_analysis_is_inconclusive_never_zero_errors(
    canary_run, prometheus_factory
):
    versions = canary_run["versions"]
    prometheus = prometheus_factory([versions["stable"].target, versions["failing"].target])
    prometheus.wait_for_scrapes(2)
    source = PrometheusSource(prometheus.url, timeout_seconds=2, scrape_interval_seconds=1)
    instant_query = source._client.custom_query

    def answer_then_go_down(*args, **kwargs):
        # The instant query is answered; Prometheus dies before the range query.
        answer = instant_query(*args, **kwargs)
        prometheus.stop()
        return answer

    source._client.custom_query = answer_then_go_down
    started = time.monotonic()
    result = analyze_canary(
        source, versions["stable"].key, versions["failing"].key, THRESHOLDS, 3.0, 1
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert time.monotonic() - started < 10
    assert any("unavailable" in reason for reason in result.reasons)
    assert "canary_stats" not in result.evidence, "no numbers may stand in for a failed query"
    # And with Prometheus already down, the next analysis is inconclusive too.
    again = analyze_canary(
        PrometheusSource(prometheus.url, timeout_seconds=1),
        versions["stable"].key,
        versions["failing"].key,
        THRESHOLDS,
        3.0,
        1,
    )
    assert again.verdict is Verdict.INCONCLUSIVE
    assert again.evidence["unavailable"][0]["kind"] == "MetricsUnavailable"
