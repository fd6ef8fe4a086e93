"""The verdict rules of canary analysis on stored scrapes (local source): what is inconclusive,
what fails, and that every verdict's evidence is plain JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deployments.analysis import Verdict
from monitoring.analysis import Thresholds, analyze_canary
from monitoring.models import MetricScrape
from monitoring.sources.base import VersionKey
from monitoring.sources.local import LocalScrapeSource

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STABLE, CANARY = VersionKey("fraud", 1), VersionKey("fraud", 2)
END = (T0 + timedelta(seconds=100)).timestamp()


def _store(key: VersionKey, per_scrape: int, failed_share: float, slow: bool, scrapes: int):
    """Scrapes every 5 s: `per_scrape` requests each, a share failing, fast or slow ones."""
    rows = []
    for index in range(scrapes):
        total = per_scrape * index
        failed = round(total * failed_share)
        fast_count = 0 if slow else total
        rows.append(
            MetricScrape(
                model_name=key.model,
                version=key.version,
                scraped_at=T0 + timedelta(seconds=100 - 5 * (scrapes - 1 - index)),
                target_url="http://127.0.0.1:1/metrics",
                samples={
                    "model_requests_total": [
                        [{"endpoint": "predict", "code": "200"}, total - failed],
                        [{"endpoint": "predict", "code": "500"}, failed],
                    ],
                    "model_request_duration_seconds_bucket": [
                        [{"endpoint": "predict", "le": "0.01"}, fast_count],
                        [{"endpoint": "predict", "le": "1.0"}, total],
                        [{"endpoint": "predict", "le": "+Inf"}, total],
                    ],
                },
            )
        )
    MetricScrape.objects.bulk_create(rows)


def _analyze(**thresholds) -> object:
    settings = {"min_intervals": 5, "step_seconds": 5.0, **thresholds}
    return analyze_canary(
        LocalScrapeSource(), STABLE, CANARY, Thresholds(**settings), 100, 50, end=END
    )


def test_it_passes_a_canary_like_stable(db):
    _store(STABLE, 10, 0.0, slow=False, scrapes=20)
    _store(CANARY, 10, 0.0, slow=False, scrapes=20)
    result = _analyze()
    assert result.verdict is Verdict.PASS, result.reasons
    assert json.loads(json.dumps(result.evidence, allow_nan=False))["verdict"] == "pass"


def test_it_fails_a_canary_over_the_error_slo(db):
    _store(STABLE, 10, 0.0, slow=False, scrapes=20)
    _store(CANARY, 10, 0.3, slow=False, scrapes=20)
    result = _analyze()
    assert result.verdict is Verdict.FAIL
    assert result.evidence["slo_checks"]["error_rate"]["verdict"] == "fail"


def test_it_fails_a_canary_slower_than_stable_within_the_slo(db):
    _store(STABLE, 10, 0.0, slow=False, scrapes=20)
    _store(CANARY, 10, 0.0, slow=True, scrapes=20)
    result = _analyze(max_latency_p95_seconds=2.0)
    assert result.verdict is Verdict.FAIL
    assert result.evidence["comparisons"]["latency_p95_shift"]["verdict"] == "fail"


def test_too_few_intervals_is_inconclusive_even_within_the_slo(db):
    _store(STABLE, 100, 0.0, slow=False, scrapes=4)
    _store(CANARY, 100, 0.0, slow=False, scrapes=4)
    result = _analyze(min_intervals=10)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any("latency_p95_shift" in reason for reason in result.reasons)


def test_a_canary_without_stored_scrapes_is_inconclusive(db):
    _store(STABLE, 10, 0.0, slow=False, scrapes=20)
    result = _analyze()
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.evidence["unavailable"][0]["kind"] == "NoData"
    assert "canary_stats" not in result.evidence


def test_it_rejects_nonsense_thresholds():
    with pytest.raises(ValueError, match="max_error_rate"):
        Thresholds(max_error_rate=1.5)
    with pytest.raises(ValueError, match="min_intervals"):
        Thresholds(min_intervals=1)
