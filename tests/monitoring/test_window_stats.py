"""Window statistics from a real Prometheus and from the local scrape source, against a known
traffic mix sent to a real inference process: 200 requests, 20 of them failing through the
fault switch."""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from monitoring.sources.base import RATE_RANGE_SCRAPES, NoData, VersionKey
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget
from monitoring.sources.prometheus import PrometheusSource
from serving.demo_model import sample_requests
from tests.monitoring.conftest import MODEL, warm_up

KEY = VersionKey(MODEL, 3)


def _capture(url: str) -> tuple[str, datetime]:
    scraped_at = datetime.now(UTC)
    return httpx.get(url, timeout=5).text, scraped_at


@pytest.fixture(scope="module")
def known_traffic(serve_module, prometheus_module_factory):
    """One version, scraped by Prometheus, that served exactly 200 requests (20 answered 500)
    inside the returned window; the exposition text before and after the traffic is captured
    for the local source, which needs the (function-scoped) database to store it."""
    (served,) = serve_module(KEY.version)
    prometheus = prometheus_module_factory([served.target])
    prometheus.wait_for_scrapes(1)
    warm_up([served], prometheus)
    start = time.time()
    before = _capture(served.metrics_url)
    # Prometheus needs one sample inside the window from before the traffic.
    prometheus.wait_for_scrapes(1)
    rows = sample_requests(200, seed=11)
    served.set_faults(error_rate=1.0)
    failed = [served.predict([row]).status_code for row in rows[:20]]
    served.set_faults(error_rate=0.0)
    answered = [(row, served.predict([row])) for row in rows[20:]]
    after = _capture(served.metrics_url)
    # The window ends only once every sparkline step whose rate range holds the traffic is
    # inside it (a range spans RATE_RANGE_SCRAPES scrapes): the steps' counts then add up to it.
    prometheus.wait_for_scrapes(RATE_RANGE_SCRAPES)
    end = time.time()
    assert failed == [500] * 20
    assert all(response.status_code == 200 for _, response in answered)
    bounds = served.package.manifest["baseline_profile"]["features"]["radius_mean"]["bin_edges"]
    inner = [float(edge) for edge in bounds[1:-1]]
    radius_buckets = [0] * (len(inner) + 1)
    for row, _ in answered:
        radius_buckets[bisect_left(inner, row["radius_mean"])] += 1
    return {
        "served": served,
        "source": PrometheusSource(prometheus.url, scrape_interval_seconds=1.0),
        "captures": [before, after],
        "window": end - start,
        "end": end,
        "radius_buckets": tuple(radius_buckets),
        "size_bands": Counter(row["size_band"] for row, _ in answered),
        "classes": Counter(r.json()["predictions"][0] for _, r in answered),
    }


@pytest.fixture
def local_source(known_traffic, db):
    source = LocalScrapeSource()
    target = ScrapeTarget(KEY.model, KEY.version, known_traffic["served"].metrics_url)
    for text, scraped_at in known_traffic["captures"]:
        source.ingest(target, text, scraped_at)
    return source


def test_prometheus_window_stats_match_the_traffic_mix(known_traffic):
    stats = known_traffic["source"].window_stats(
        KEY, known_traffic["window"], end=known_traffic["end"]
    )
    # increase() extrapolates to the window's edges, so counts are close, ratios exact.
    assert stats.requests == pytest.approx(200, rel=0.2)
    assert stats.errors == pytest.approx(20, rel=0.2)
    assert stats.error_rate == pytest.approx(0.10, abs=0.01)
    assert stats.predictions == pytest.approx(180, rel=0.2)
    assert stats.rejections == 0
    assert 0 < stats.latency_p50 <= stats.latency_p95 <= stats.latency_p99 < 0.25


def test_local_source_counts_the_same_traffic_exactly(known_traffic, local_source):
    stats = local_source.window_stats(KEY, known_traffic["window"], end=known_traffic["end"])
    assert (stats.requests, stats.errors, stats.predictions) == (200, 20, 180)
    assert stats.error_rate == pytest.approx(0.10)


def test_both_sources_agree_on_latency_quantiles(known_traffic, local_source):
    window, end = known_traffic["window"], known_traffic["end"]
    from_prometheus = known_traffic["source"].window_stats(KEY, window, end=end)
    from_local = local_source.window_stats(KEY, window, end=end)
    # Same buckets, same interpolation: extrapolation scales every bucket alike.
    assert from_local.latency_p50 == pytest.approx(from_prometheus.latency_p50, rel=0.1)
    assert from_local.latency_p95 == pytest.approx(from_prometheus.latency_p95, rel=0.1)


def test_feature_counts_match_what_was_sent(known_traffic, local_source):
    window, end = known_traffic["window"], known_traffic["end"]
    expected = known_traffic["radius_buckets"]
    assert sum(expected) == 180

    local = local_source.feature_counts(KEY, window, end=end)
    assert local.numeric["radius_mean"].counts == expected
    assert local.numeric["radius_mean"].upper_bounds[-1] == float("inf")
    assert {k: v for k, v in local.categorical["size_band"].items() if v} == dict(
        known_traffic["size_bands"]
    )
    assert {k: v for k, v in local.prediction_classes.items() if v} == dict(
        known_traffic["classes"]
    )

    remote = known_traffic["source"].feature_counts(KEY, window, end=end)
    # Prometheus limits the extrapolation of each bucket series on its own (never below zero),
    # so per-bucket differences can be off by one or two.
    for observed, sent in zip(remote.numeric["radius_mean"].counts, expected, strict=True):
        assert observed == pytest.approx(sent, rel=0.2, abs=2)
    for band, sent in known_traffic["size_bands"].items():
        assert remote.categorical["size_band"][band] == pytest.approx(sent, rel=0.2, abs=2)
    for label, sent in known_traffic["classes"].items():
        assert remote.prediction_classes[label] == pytest.approx(sent, rel=0.2, abs=2)


def test_sparkline_series_add_up_to_the_traffic(known_traffic, local_source):
    window, end = known_traffic["window"], known_traffic["end"]
    remote = known_traffic["source"].series(KEY, "requests", window, 1.0, end=end)
    local = local_source.series(KEY, "requests", window, 1.0, end=end)
    assert sum(value for _, value in local.points if value) == 200
    # Prometheus's points are extrapolated increases at whole-second steps: approximately.
    times = [t for t, _ in remote.points]
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(times))
    assert 0.4 * 200 <= sum(value for _, value in remote.points if value) <= 1.35 * 200
    error_rate = local_source.series(KEY, "error_rate", window, window, end=end)
    assert [value for _, value in error_rate.points] == [pytest.approx(0.1)]


def test_a_version_prometheus_never_scraped_is_no_data_not_zero(known_traffic):
    source, window, end = known_traffic["source"], known_traffic["window"], known_traffic["end"]
    missing = VersionKey(MODEL, 99)
    found = source.batch_window_stats([KEY, missing], window, end=end)
    assert found[KEY].requests > 0
    assert isinstance(found[missing], NoData)
    with pytest.raises(NoData):
        source.window_stats(missing, window, end=end)
    with pytest.raises(NoData):
        source.feature_counts(missing, window, end=end)
