"""Retention (reviews.retention.purge_summaries): decided items older than REVIEWS_RETENTION_DAYS
lose their input summary and explanation, once, with a history event; the decision stays; open
and younger items keep theirs; any backlog is worked through in bounded batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reviews import retention
from reviews.models import ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import queued_item_of, review_deployment_of
from tests.reviews.conftest import fresh
from tests.support.stopped_clock import stopped_clock

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
EXPLANATION = {"shap": {"income": -0.3, "region": 0.1}}


@pytest.fixture(autouse=True)
def stopped(monkeypatch, settings):  # type: ignore[no-untyped-def]
    settings.REVIEWS_RETENTION_DAYS = 90
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    return review_deployment_of(team)


def decided(deployment, *, age: timedelta, **fields) -> ReviewItem:  # type: ignore[no-untyped-def]
    return queued_item_of(
        deployment,
        created_at=T0 - age,
        status=ReviewStatus.DECIDED,
        decision="override",
        final_output={"label": "approved"},
        decision_reason="payslip checked",
        decided_at=T0 - age + timedelta(hours=1),
        explanation=EXPLANATION,
        **fields,
    )


def test_old_decided_items_lose_their_summary_but_keep_the_decision(deployment):
    old = decided(deployment, age=timedelta(days=91))
    assert retention.purge_summaries() == 1
    old = fresh(old)
    assert old.input_summary is None and old.explanation is None
    assert old.summary_purged_at == T0
    assert (old.decision, old.final_output, old.decision_reason) == (
        "override",
        {"label": "approved"},
        "payslip checked",
    )
    event = old.events.get(kind=ReviewEventKind.SUMMARY_PURGED)
    assert event.actor_label == "system:review-retention"
    assert event.detail == {"retention_days": 90}


def test_younger_and_open_items_keep_their_summary(deployment):
    young = decided(deployment, age=timedelta(days=89))
    waiting = queued_item_of(deployment, created_at=T0 - timedelta(days=200))
    claimed = queued_item_of(
        deployment, created_at=T0 - timedelta(days=200), status=ReviewStatus.CLAIMED
    )
    assert retention.purge_summaries() == 0
    for item in (young, waiting, claimed):
        item = fresh(item)
        assert item.input_summary == {"income": 52000, "region": "north"}
        assert item.summary_purged_at is None
        assert not item.events.exists()


def test_an_item_is_purged_once(deployment):
    old = decided(deployment, age=timedelta(days=120))
    assert retention.purge_summaries() == 1
    assert retention.purge_summaries() == 0
    assert fresh(old).events.filter(kind=ReviewEventKind.SUMMARY_PURGED).count() == 1


def test_the_retention_is_a_setting(deployment, settings):
    settings.REVIEWS_RETENTION_DAYS = 7
    week_old = decided(deployment, age=timedelta(days=8))
    assert retention.purge_summaries() == 1
    assert fresh(week_old).input_summary is None


def test_a_backlog_is_purged_in_bounded_batches(deployment, settings):
    settings.REVIEWS_PURGE_BATCH = 2
    items = [decided(deployment, age=timedelta(days=100 + i)) for i in range(5)]
    assert retention.purge_summaries() == 5
    assert all(fresh(item).summary_purged_at == T0 for item in items)
