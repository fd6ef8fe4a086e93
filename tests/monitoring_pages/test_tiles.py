"""The tiles of a deployment from a real Prometheus scraping real serving processes, and from the
local scrape source, against a known traffic mix: stable v1 served 200 requests (20 failed
through the fault switch, 180 answered 4 rows each, unshifted), canary v2 served 40 requests of
8 rows drawn from the shifted distribution (sample_requests(drift=True))."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from deployments.models import DeploymentConfig
from monitoring.health import Health
from monitoring.selectors import deployment_health
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget
from monitoring.tiles import TileStatus
from serving.demo_model import CATEGORICAL_FEATURE, DRIFTED_FEATURES, sample_requests
from tests.monitoring.conftest import MODEL, warm_up
from tests.monitoring_pages.conftest import GIB_HOUR, VCPU_HOUR, demo_deployment, make_environment

STABLE_ROWS_PER_REQUEST = 4
CANARY_ROWS_PER_REQUEST = 8
# Default config: 2 replicas of 250m CPU and 512Mi memory, priced per hour.
HOURLY = 2 * (0.25 * VCPU_HOUR + 0.5 * GIB_HOUR)


def _capture(url: str) -> tuple[str, datetime]:
    scraped_at = datetime.now(UTC)
    return httpx.get(url, timeout=5).text, scraped_at


@pytest.fixture(scope="module")
def traffic(serve_module, prometheus_module_factory):
    stable, canary = serve_module(1, 2)
    prometheus = prometheus_module_factory([stable.target, canary.target])
    prometheus.wait_for_scrapes(1)
    warm_up([stable, canary], prometheus)
    start = time.time()
    before = {served: _capture(served.metrics_url) for served in (stable, canary)}
    # A ~15 s window: increase() extrapolates over at most a scrape interval at each edge, so
    # a longer window keeps that error small (at most 2/15).
    prometheus.wait_for_scrapes(6)
    stable.set_faults(error_rate=1.0)
    failed = [stable.predict([row]).status_code for row in sample_requests(20, seed=3)]
    stable.set_faults(error_rate=0.0)
    rows = sample_requests(180 * STABLE_ROWS_PER_REQUEST, seed=5)
    answered = [
        stable.predict(rows[i : i + STABLE_ROWS_PER_REQUEST]).status_code
        for i in range(0, len(rows), STABLE_ROWS_PER_REQUEST)
    ]
    shifted = sample_requests(40 * CANARY_ROWS_PER_REQUEST, drift=True, seed=9)
    drifted = [
        canary.predict(shifted[i : i + CANARY_ROWS_PER_REQUEST]).status_code
        for i in range(0, len(shifted), CANARY_ROWS_PER_REQUEST)
    ]
    after = {served: _capture(served.metrics_url) for served in (stable, canary)}
    prometheus.wait_for_scrapes(6)
    end = time.time()
    assert failed == [500] * 20
    assert answered == [200] * 180
    assert drifted == [200] * 40
    return {
        "prometheus": prometheus,
        "served": {1: stable, 2: canary},
        "captures": {served.key.version: (before[served], after[served]) for served in before},
        "window": end - start,
        "end": end,
        "baseline": stable.package.manifest["baseline_profile"],
    }


def _health(deployment, traffic):
    # Sparkline steps of two scrape intervals, as the pages use: a 1 s step over 1 s scrapes
    # leaves most points empty when the machine is busy.
    (health,) = deployment_health([deployment], traffic["window"], 2.0, end=traffic["end"])
    return health


def _prometheus_deployment(traffic, team, people, **config):
    environment = make_environment("production", "prometheus", traffic["prometheus"].url)
    return demo_deployment(
        team, environment, traffic["baseline"], canary_of=people["owner"], **config
    )


def test_prometheus_tiles_show_the_known_traffic_mix(traffic, team, people):
    health = _health(_prometheus_deployment(traffic, team, people), traffic)
    stable, canary = health.tracks
    assert (stable.track, stable.version_number) == ("stable", 1)
    assert (canary.track, canary.version_number) == ("canary", 2)
    window = traffic["window"]

    rate = stable.tile("request_rate")
    # increase() extrapolates to the window's edges: counts are close, ratios exact.
    assert rate.value == pytest.approx(200 / window, rel=0.2)
    errors = stable.tile("error_rate")
    assert errors.value == pytest.approx(0.10, abs=0.01)
    assert errors.status == TileStatus.FAIL  # the SLO allows 1%
    p50, p95, p99 = (stable.tile(k).value for k in ("latency_p50", "latency_p95", "latency_p99"))
    assert 0 < p50 <= p95 <= p99 < 0.25
    assert stable.tile("rejection_rate").value == 0
    assert stable.tile("rejection_rate").text == "0%"
    assert canary.tile("error_rate").value == 0
    assert canary.tile("request_rate").value == pytest.approx(40 / window, rel=0.2)

    assert stable.tile("cost_hour").value == pytest.approx(HOURLY)
    expected_per_1000 = HOURLY * window / 3600 / (180 * STABLE_ROWS_PER_REQUEST) * 1000
    assert stable.tile("cost_per_1000").value == pytest.approx(expected_per_1000, rel=0.2)
    assert "usage unknown" in stable.tile("cost_hour").detail

    # 10% errors against a 99.5% objective burns at 20x: both 1h and 5m exceed 14.4.
    burn = stable.tile("burn")
    assert burn.status == TileStatus.FAIL
    assert burn.text.startswith("page: 1h/5m")
    assert [a.long_window for a in stable.burn_alerts] == ["1h"]
    budget = stable.tile("error_budget")
    assert budget.status == TileStatus.FAIL and budget.value < 0
    # The test Prometheus keeps 1h: the error budget says so instead of claiming 28 days.
    assert health.slo_window_label.startswith("1h (longest available: Prometheus retention")
    assert any("6h, 3d" in note for note in health.notes)

    assert stable.health == Health.CRITICAL
    assert health.health == Health.CRITICAL
    assert any("Error rate" in reason for reason in health.reasons)
    # Every metric tile carries a sparkline spanning the window, with values where the traffic
    # was. The traffic is one short burst between two scrapes; each step's rate reaches four
    # scrapes back, one more than the step (monitoring.sources.base.rate_range), so whichever
    # scrapes the burst fell between, some step's range holds both (it vanished when the range
    # was the step: no step saw the increase across a step boundary).
    for key in ("request_rate", "error_rate", "latency_p95", "latency_p99"):
        spark = stable.tile(key).spark
        assert len(spark) >= 5, (key, spark)
        assert any(value is not None and value > 0 for value in spark), (key, spark)
    assert any(value and value > 0 for value in canary.tile("request_rate").spark)


def test_drift_tile_flags_shifted_traffic_and_not_the_unshifted(traffic, team, people):
    health = _health(_prometheus_deployment(traffic, team, people), traffic)
    stable, canary = health.tracks
    assert stable.tile("drift").status == TileStatus.OK
    assert stable.tile("drift").value < 0.1
    drift = canary.tile("drift")
    assert drift.status in (TileStatus.WARN, TileStatus.FAIL)
    assert drift.value >= 0.1
    worst = drift.text.split("(")[-1].rstrip(")")
    assert worst in (*DRIFTED_FEATURES, CATEGORICAL_FEATURE)
    assert set(canary.drift.drifted_features) & set(DRIFTED_FEATURES)


def test_drift_thresholds_come_from_the_deployment_config(traffic, team, people):
    deployment = _prometheus_deployment(traffic, team, people, drift_warn=5.0, drift_alert=9.0)
    _, canary = _health(deployment, traffic).tracks
    assert (canary.drift.thresholds.warn, canary.drift.thresholds.alert) == (5.0, 9.0)
    numeric = [f for f in canary.drift.features.values() if f.metric == "psi"]
    for feature in numeric:
        expected = "ok" if feature.value < 5 else "warn" if feature.value < 9 else "alert"
        assert feature.status == expected, feature.name
    # A shift that alerts at the default 0.25 is fine under this deployment's limits.
    assert any(0.25 <= f.value < 5 for f in numeric)
    assert "PSI warn ≥ 5, alert ≥ 9" in canary.tile("drift").detail
    # The config's thresholds are PSI's; the categorical feature keeps the JS-distance limits.
    assert canary.drift.features[CATEGORICAL_FEATURE].status in ("warn", "alert")


def test_a_business_kpi_is_a_tile_with_prometheus(traffic, team, people):
    deployment = _prometheus_deployment(traffic, team, people)
    query = 'sum(increase(model_predictions_total{model="{model}",version="{version}"}[{window}]))'
    kpi = {"name": "Rows scored", "unit": "rows", "good_direction": "up", "query": query}
    DeploymentConfig.objects.filter(pk=deployment.config_id).update(metrics_queries={"kpi": kpi})
    deployment.refresh_from_db()
    stable, canary = _health(deployment, traffic).tracks
    assert stable.tile("kpi").label == "Rows scored"
    assert stable.tile("kpi").value == pytest.approx(180 * STABLE_ROWS_PER_REQUEST, rel=0.2)
    assert stable.tile("kpi").text.endswith(" rows")
    assert canary.tile("kpi").value == pytest.approx(40 * CANARY_ROWS_PER_REQUEST, rel=0.2)


def _local_deployment(traffic, team, people):
    environment = make_environment("demo", "local")
    deployment = demo_deployment(team, environment, traffic["baseline"], canary_of=people["owner"])
    source = LocalScrapeSource()
    for version, captures in traffic["captures"].items():
        target = ScrapeTarget(MODEL, version, traffic["served"][version].metrics_url)
        for text, scraped_at in captures:
            source.ingest(target, text, scraped_at)
    return deployment


def test_local_source_tiles_count_the_traffic_exactly(traffic, team, people):
    health = _health(_local_deployment(traffic, team, people), traffic)
    stable, canary = health.tracks
    window = traffic["window"]
    assert stable.tile("request_rate").value == pytest.approx(200 / window)
    assert stable.tile("error_rate").value == pytest.approx(0.10)
    assert "20 of 200 answered 5xx" in stable.tile("error_rate").detail
    expected_per_1000 = HOURLY * window / 3600 / (180 * STABLE_ROWS_PER_REQUEST) * 1000
    assert stable.tile("cost_per_1000").value == pytest.approx(expected_per_1000)
    assert stable.tile("drift").status == TileStatus.OK
    assert canary.tile("drift").status in (TileStatus.WARN, TileStatus.FAIL)
    # 20 bad of 200 against 99.5%: the budget (1 allowed) is overspent 20 times.
    assert stable.tile("error_budget").value == pytest.approx(1 - 20 / (0.005 * 200))
    assert stable.tile("burn").status == TileStatus.FAIL
    # The local source keeps six hours: the 3-day ticket rule cannot be evaluated.
    assert health.slo_window_label.startswith("6h (longest available: local scrape retention")
    assert any("3d are longer" in note for note in health.notes)


def test_local_source_skips_the_kpi_with_a_note(traffic, team, people):
    deployment = _local_deployment(traffic, team, people)
    kpi = {"name": "Orders", "unit": "", "good_direction": "up", "query": "sum(orders_total)"}
    DeploymentConfig.objects.filter(pk=deployment.config_id).update(metrics_queries={"kpi": kpi})
    deployment.refresh_from_db()
    health = _health(deployment, traffic)
    assert all(track.tile("kpi") is None for track in health.tracks)
    assert any("'Orders' is skipped: it needs a Prometheus source" in n for n in health.notes)
