"""The local scrape source: scraping real processes into the database, counter resets, retention,
and a query cost that does not grow with the number of versions or scrapes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.models import MetricScrape
from monitoring.sources.base import NoData, VersionKey
from monitoring.sources.local import LocalScrapeSource, ScrapeTarget
from tests.monitoring.conftest import MODEL, restart
from tests.support.prometheus import free_port

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _requests(ok: float, failed: float = 0.0) -> dict:
    return {
        "model_requests_total": [
            [{"endpoint": "predict", "code": "200"}, ok],
            [{"endpoint": "predict", "code": "500"}, failed],
        ],
        "model_request_duration_seconds_bucket": [
            [{"endpoint": "predict", "le": "0.01"}, ok + failed],
            [{"endpoint": "predict", "le": "+Inf"}, ok + failed],
        ],
    }


def _scrape(key: VersionKey, seconds: float, samples: dict) -> MetricScrape:
    return MetricScrape(
        model_name=key.model,
        version=key.version,
        scraped_at=T0 + timedelta(seconds=seconds),
        target_url="http://127.0.0.1:1/metrics",
        samples=samples,
    )


def test_it_scrapes_real_processes_and_survives_a_restart(serve, db):
    (served,) = serve(7)
    target = ScrapeTarget(MODEL, 7, served.metrics_url)
    source = LocalScrapeSource()
    start = time.time()
    assert source.scrape([target])[0].ok
    assert served.send(30) == {200: 30}
    source.scrape([target])
    # A restart resets every counter to zero; the 10 requests after it must still count.
    served = restart(served)
    source.scrape([target])
    assert served.send(10) == {200: 10}
    source.scrape([target])
    stats = source.window_stats(VersionKey(MODEL, 7), time.time() - start + 0.5)
    assert (stats.requests, stats.errors, stats.predictions) == (40, 0, 40)
    assert stats.error_rate == 0


def test_a_counter_reset_counts_the_new_value_as_the_increase(db):
    key = VersionKey("fraud", 1)
    # 10 -> 25 (+15), restart -> 4 (+4), -> 9 (+5); failures 0 -> 2 -> 0 (reset) -> 1 (+1).
    MetricScrape.objects.bulk_create(
        [
            _scrape(key, 0, _requests(10)),
            _scrape(key, 10, _requests(25, 2)),
            _scrape(key, 20, _requests(4)),
            _scrape(key, 30, _requests(8, 1)),
        ]
    )
    stats = LocalScrapeSource().window_stats(key, 40, end=(T0 + timedelta(seconds=35)).timestamp())
    assert stats.requests == 15 + 2 + 4 + 5
    assert stats.errors == 3
    assert stats.error_rate == pytest.approx(3 / 26)


def test_fewer_than_two_scrapes_is_no_data_not_zero(db):
    key = VersionKey("fraud", 1)
    MetricScrape.objects.bulk_create([_scrape(key, 0, _requests(10))])
    source = LocalScrapeSource()
    end = (T0 + timedelta(seconds=5)).timestamp()
    with pytest.raises(NoData):
        source.window_stats(key, 30, end=end)
    assert isinstance(
        source.batch_window_stats([VersionKey("fraud", 2)], 30, end=end)[VersionKey("fraud", 2)],
        NoData,
    )


def test_an_unreachable_target_stores_nothing(db):
    target = ScrapeTarget("fraud", 1, f"http://127.0.0.1:{free_port()}/metrics")
    (outcome,) = LocalScrapeSource(timeout_seconds=0.5).scrape([target])
    assert not outcome.ok
    assert "ConnectError" in outcome.error
    assert not MetricScrape.objects.exists()


def test_it_prunes_scrapes_past_retention(db):
    key = VersionKey("fraud", 1)
    MetricScrape.objects.bulk_create(
        [_scrape(key, 0, _requests(1)), _scrape(key, 3600, _requests(2))]
    )
    deleted = LocalScrapeSource(retention_seconds=600).prune(now=T0 + timedelta(seconds=3700))
    assert deleted == 1
    assert MetricScrape.objects.get().scraped_at == T0 + timedelta(seconds=3600)


@pytest.mark.parametrize("versions", [1, 50])
def test_window_stats_cost_one_query_for_any_number_of_versions(
    db, django_assert_max_num_queries, versions
):
    keys = [VersionKey("fraud", version) for version in range(1, versions + 1)]
    MetricScrape.objects.bulk_create(
        [
            _scrape(key, seconds, _requests(seconds * 2, seconds // 10))
            for key in keys
            for seconds in range(0, 60, 5)
        ]
    )
    source = LocalScrapeSource()
    end = (T0 + timedelta(seconds=60)).timestamp()
    with django_assert_max_num_queries(1):
        found = source.batch_window_stats(keys, 60, end=end, step_seconds=10)
    with django_assert_max_num_queries(1):
        source.batch_series(keys, "latency_p95", 60, 10, end=end)
    with django_assert_max_num_queries(1):
        source.batch_feature_counts(keys, 60, end=end)
    assert len(found) == versions
    assert all(stats.requests == 110 + 5 for stats in found.values())
    assert all(len(stats.samples) == 6 for stats in found.values())
