"""Drift and cost in canary analysis, against a real Prometheus scraping real inference processes:
a stable version, a canary that gets the same kind of traffic and a canary that gets shifted
traffic (`sample_requests(drift=True)`) share one traffic run, and each test judges one of them
against the canary's baseline profile (the demo package's)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from deployments.analysis import AnalysisRequest, Verdict
from monitoring.analysis import (
    CostCheck,
    DriftThresholds,
    ReplicaResources,
    Thresholds,
    analyze_canary,
)
from monitoring.analyzer import MonitoringAnalyzer, cost_check_for
from monitoring.api.exporter import exposition
from monitoring.cost import CostRates
from monitoring.sources.base import MetricsUnavailable
from monitoring.sources.prometheus import PrometheusSource
from serving.demo_model import DRIFTED_FEATURES, sample_requests
from tests.monitoring.conftest import ServedVersion, warm_up
from tests.monitoring.test_exporter import make_release, store_analysis

WINDOW_SECONDS = 14.0
MIN_REQUESTS = 50
RATE_PER_SECOND = 12
ROWS_PER_REQUEST = 4  # ~700 instances per version: PSI sampling noise stays far below 0.25
THRESHOLDS = Thresholds(
    max_error_rate=0.05,
    max_latency_p95_seconds=1.0,
    alpha=0.01,
    min_intervals=5,
    step_seconds=2.0,
)
RATES = CostRates(vcpu_hour=0.04, gib_hour=0.005)
RESOURCES = ReplicaResources(cpu="500m", memory="1Gi", replicas=2)


def _send_steadily(
    served: ServedVersion, rows: list[dict], rate: float, seconds: float, codes: Counter
) -> None:
    interval = 1 / rate
    deadline = time.monotonic() + seconds
    next_at = time.monotonic()
    sent = 0
    while (now := time.monotonic()) < deadline and sent * ROWS_PER_REQUEST < len(rows):
        if now < next_at:
            time.sleep(min(next_at - now, deadline - now))
            continue
        batch = rows[sent * ROWS_PER_REQUEST : (sent + 1) * ROWS_PER_REQUEST]
        codes[served.predict(batch).status_code] += 1
        sent += 1
        next_at += interval


@pytest.fixture(scope="module")
def drift_run(serve_module, prometheus_module_factory, demo_packages):
    stable, steady, shifted = serve_module(1, 2, 3)
    versions = [stable, steady, shifted]
    prometheus = prometheus_module_factory([served.target for served in versions])
    warm_up(versions, prometheus)
    seconds = WINDOW_SECONDS + 1
    count = int(RATE_PER_SECOND * seconds * ROWS_PER_REQUEST) + ROWS_PER_REQUEST
    traffic = {
        stable: sample_requests(count, seed=11),
        steady: sample_requests(count, seed=12),
        shifted: sample_requests(count, drift=True, seed=13),
    }
    codes = {served: Counter() for served in versions}
    threads = [
        threading.Thread(
            target=_send_steadily, args=(served, rows, RATE_PER_SECOND, seconds, codes[served])
        )
        for served, rows in traffic.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    prometheus.wait_for_scrapes(1)
    return {
        "prometheus": prometheus,
        "source": PrometheusSource(prometheus.url, timeout_seconds=5, scrape_interval_seconds=1),
        "end": time.time(),
        "versions": {"stable": stable, "steady": steady, "shifted": shifted},
        "codes": codes,
        "profile": demo_packages[1].manifest["baseline_profile"],
    }


def _judge(run, canary: str, **overrides):
    versions = run["versions"]
    arguments = {
        "thresholds": THRESHOLDS,
        "window_seconds": WINDOW_SECONDS,
        "min_requests": MIN_REQUESTS,
        "end": run["end"],
        "baseline_profile": run["profile"],
        "drift_thresholds": DriftThresholds(warn=0.1, alert=0.25),
        **overrides,
    }
    return analyze_canary(run["source"], versions["stable"].key, versions[canary].key, **arguments)


def test_the_traffic_run_was_served(drift_run):
    for served, codes in drift_run["codes"].items():
        assert codes[200] >= MIN_REQUESTS, (served.key, codes)
        assert set(codes) == {200}, (served.key, codes)


def test_shifted_traffic_fails_the_canary_with_per_feature_drift(drift_run):
    result = _judge(drift_run, "shifted")
    assert result.verdict is Verdict.FAIL, result.reasons
    drift = result.evidence["drift"]
    assert drift["status"] == "alert"
    assert any("drift at or over the alert threshold" in reason for reason in result.reasons)
    for name in DRIFTED_FEATURES:
        feature = drift["features"][name]
        assert feature["metric"] == "psi"
        assert feature["status"] == "alert"
        assert feature["value"] >= 0.25
        assert feature["cur_count"] >= MIN_REQUESTS * ROWS_PER_REQUEST
        assert len(feature["cur_proportions"]) == len(feature["ref_proportions"])
        assert name in " ".join(result.reasons)
    # The size band is skewed towards "large" too (Jensen-Shannon distance).
    assert drift["features"]["size_band"]["metric"] == "js_distance"
    assert drift["features"]["size_band"]["value"] > 0.1
    # A feature the drift does not move stays below the alert threshold.
    assert drift["features"]["smoothness_mean"]["status"] in {"ok", "warn"}
    assert drift["psi_max"] == max(
        f["value"] for f in drift["features"].values() if f["metric"] == "psi"
    )
    json.dumps(result.evidence, allow_nan=False)


def test_unshifted_traffic_passes_with_drift_numbers_in_the_evidence(drift_run):
    result = _judge(drift_run, "steady")
    assert result.verdict is Verdict.PASS, result.reasons
    drift = result.evidence["drift"]
    assert drift["status"] == "ok", drift["drifted_features"]
    assert 0 <= drift["psi_max"] < 0.1
    assert set(drift["features"]) == set(drift_run["profile"]["features"])
    assert drift["prediction"]["metric"] == "js_distance"
    assert result.evidence["warnings"] == []


def test_drift_over_the_warning_threshold_is_a_warning_not_a_failure(drift_run):
    result = _judge(drift_run, "steady", drift_thresholds=DriftThresholds(warn=0.0, alert=5.0))
    assert result.verdict is Verdict.PASS, result.reasons
    assert result.evidence["drift"]["status"] == "warn"
    assert any("over the warning threshold" in w for w in result.evidence["warnings"])


def test_too_little_drift_data_is_noted_but_does_not_block_a_decided_verdict(drift_run):
    result = _judge(drift_run, "steady", drift_thresholds=DriftThresholds(min_count=10**6))
    assert result.verdict is Verdict.PASS, result.reasons
    assert result.evidence["drift"]["status"] == "insufficient_data"
    assert any("not blocking" in w for w in result.evidence["warnings"])


def test_a_version_without_a_baseline_profile_is_not_checked_for_drift(drift_run):
    result = _judge(drift_run, "shifted", baseline_profile=None)
    assert result.evidence["drift"]["status"] == "not_checked"
    assert not any("drift" in reason for reason in result.reasons)


def test_a_failed_drift_query_is_inconclusive_never_a_pass(drift_run, monkeypatch):
    source = PrometheusSource(drift_run["prometheus"].url, scrape_interval_seconds=1)

    def refuse(*args, **kwargs):
        raise MetricsUnavailable("connection refused")

    monkeypatch.setattr(source, "batch_feature_counts", refuse)
    versions = drift_run["versions"]
    result = analyze_canary(
        source,
        versions["stable"].key,
        versions["steady"].key,
        THRESHOLDS,
        WINDOW_SECONDS,
        MIN_REQUESTS,
        end=drift_run["end"],
        baseline_profile=drift_run["profile"],
    )
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.evidence["drift"]["status"] == "unavailable"
    assert any("drift query failed" in reason for reason in result.reasons)


def test_cost_per_1000_predictions_is_in_the_evidence(drift_run):
    check = CostCheck(
        rates=RATES, stable=RESOURCES, canary=RESOURCES, stable_share=0.5, canary_share=0.5
    )
    result = _judge(drift_run, "steady", cost=check)
    assert result.verdict is Verdict.PASS, result.reasons
    cost = result.evidence["cost"]
    hourly = 2 * (0.5 * 0.04 + 1.0 * 0.005)
    for role in ("stable", "canary"):
        side = cost[role]
        predictions = result.evidence[f"{role}_stats"]["predictions"]
        assert side["predictions"] == predictions > 0
        assert side["hourly_cost"] == pytest.approx(hourly)
        expected = hourly * WINDOW_SECONDS / 3600 / predictions * 1000
        assert side["cost_per_1000"] == pytest.approx(expected)
        assert side["cost_per_1000_at_full_traffic"] == pytest.approx(expected * 0.5)
    # Same resources, same traffic: about the same cost per prediction.
    assert abs(cost["relative_increase"]) < 0.25
    assert cost["status"] == "reported"


def test_a_canary_on_dearer_resources_fails_a_cost_limit(drift_run):
    dearer = ReplicaResources(cpu="1", memory="1Gi", replicas=2)
    check = CostCheck(
        rates=RATES,
        stable=RESOURCES,
        canary=dearer,
        stable_share=0.5,
        canary_share=0.5,
        max_relative_increase=0.2,
    )
    result = _judge(drift_run, "steady", cost=check)
    assert result.verdict is Verdict.FAIL
    cost = result.evidence["cost"]
    assert cost["status"] == "exceeded"
    assert cost["relative_increase"] > 0.2
    assert any("per 1,000 predictions" in reason for reason in result.reasons)


def test_the_engine_analyzer_fails_shifted_traffic_with_drift_and_cost_evidence(drift_run):
    versions = drift_run["versions"]
    request = AnalysisRequest(
        deployment_id=1,
        environment="production",
        model=versions["stable"].key.model,
        stable_version=versions["stable"].key.version,
        canary_version=versions["shifted"].key.version,
        window_seconds=60.0,
        min_requests=MIN_REQUESTS,
        max_error_rate=0.05,
        max_latency_p95_seconds=1.0,
        metrics_kind="prometheus",
        metrics_url=drift_run["prometheus"].url,
        drift_alert=0.25,
        drift_warn=0.1,
        baseline_profile=drift_run["profile"],
        resources={"replicas": 2, "cpu_request": "500m", "memory_request": "1Gi", "gpu": 0},
        prices={"vcpu_hour": 0.04, "gib_hour": 0.005, "gpu_hour": 0.0},
        traffic={"weights": {"1": 50, "3": 50}, "mirror": None},
    )
    result = MonitoringAnalyzer().analyze(request)
    # Whatever the rank tests say over this longer window, a drift alert is conclusive.
    assert result.verdict is Verdict.FAIL, result.reasons
    assert result.evidence["drift"]["status"] == "alert"
    assert result.evidence["cost"]["normalised_by_traffic_share"] is True
    assert result.evidence["cost"]["canary"]["traffic_share"] == 0.5


@pytest.mark.django_db
def test_the_exporter_shows_the_stored_analysis_numbers(drift_run):
    check = CostCheck(
        rates=RATES, stable=RESOURCES, canary=RESOURCES, stable_share=0.5, canary_share=0.5
    )
    result = _judge(drift_run, "shifted", cost=check)
    release = make_release(stable=1, canary=3)
    store_analysis(release, result.to_dict(), weight=50)
    body, _ = exposition()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    common = {
        "deployment": release.deployment.name,
        "environment": release.deployment.environment.name,
        "release": str(release.pk),
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({**common, **labels}.items())))]

    evidence = result.evidence
    assert value("modelplane_analysis_verdict", version="3", verdict="fail") == 1
    assert value("modelplane_analysis_verdict", version="3", verdict="pass") == 0
    assert value("modelplane_analysis_drift_psi_max", version="3", role="canary") == pytest.approx(
        evidence["drift"]["psi_max"]
    )
    for role, version in (("stable", "1"), ("canary", "3")):
        stats = evidence[f"{role}_stats"]
        assert value(
            "modelplane_analysis_latency_p95_seconds", version=version, role=role
        ) == pytest.approx(stats["latency_p95"])
        assert value("modelplane_analysis_error_rate", version=version, role=role) == pytest.approx(
            stats["error_rate"]
        )
        assert value(
            "modelplane_analysis_cost_per_1000_predictions", version=version, role=role
        ) == pytest.approx(evidence["cost"][role]["cost_per_1000_at_full_traffic"])


def _request(traffic: dict, **overrides) -> AnalysisRequest:
    fields = {
        "deployment_id": 1,
        "environment": "production",
        "model": "m",
        "stable_version": 1,
        "canary_version": 2,
        "window_seconds": 60.0,
        "min_requests": 10,
        "max_error_rate": 0.01,
        "max_latency_p95_seconds": 0.5,
        "metrics_kind": "prometheus",
        "metrics_url": "http://127.0.0.1:9",
        "resources": {"replicas": 2, "cpu_request": "250m", "memory_request": "512Mi", "gpu": 0},
        "prices": {"vcpu_hour": 0.04, "gib_hour": 0.005, "gpu_hour": 0.0},
        "traffic": traffic,
    }
    return AnalysisRequest(**{**fields, **overrides})


def test_a_canary_step_is_priced_at_its_weight():
    check = cost_check_for(_request({"weights": {"1": 95, "2": 5}, "mirror": None}))
    assert (check.stable_share, check.canary_share) == (0.95, 0.05)
    assert check.max_relative_increase is None


def test_a_shadow_is_priced_at_its_mirror_percentage():
    traffic = {"weights": {"1": 100}, "mirror": {"version": 2, "percent": 30}}
    check = cost_check_for(_request(traffic, max_cost_increase=0.2))
    assert (check.stable_share, check.canary_share) == (1.0, 0.3)
    assert check.max_relative_increase == 0.2


def test_an_environment_without_prices_is_not_checked_for_cost():
    request = _request({}, prices={"vcpu_hour": 0.0, "gib_hour": 0.0, "gpu_hour": 0.0})
    assert cost_check_for(request) is None
