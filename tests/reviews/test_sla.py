"""Review SLAs (reviews.sla): deadlines in plain minutes or in business hours (a weekend, the end
of a working day, daylight-saving changes in Europe and America, a change inside the working
window), the time left, and the beat check that marks breached items and keeps one alert per
deployment through alerts.lifecycle until no breached item is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts import rules as alert_rules
from alerts.models import Alert, AlertSource, AlertStatus
from controlplane.celery import app as celery_app
from core import clock
from deployments.review_policy import policy_of, validate_review_policy
from reviews import sla, tasks
from reviews.models import ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import queued_item_of, review_deployment_of
from tests.support.stopped_clock import stopped_clock

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # a Monday


def policy(minutes: int, hours: dict | None = None):  # type: ignore[no-untyped-def]
    raw = {"all": True, "sla_minutes": minutes}
    if hours is not None:
        raw["business_hours"] = hours
    return policy_of(validate_review_policy(raw))


OFFICE = {"timezone": "Europe/Paris", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


# Deadlines --------------------------------------------------------------------------------------


def test_without_business_hours_the_sla_is_plain_minutes():
    start = datetime(2025, 6, 7, 23, 30, tzinfo=UTC)  # a Saturday night counts too
    assert sla.deadline(start, policy(240)) == start + timedelta(hours=4)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (paris(2025, 6, 2, 10, 0), paris(2025, 6, 2, 14, 0)),  # within the day
        (paris(2025, 6, 2, 13, 0), paris(2025, 6, 2, 17, 0)),  # due at closing time exactly
        (paris(2025, 6, 2, 16, 0), paris(2025, 6, 3, 12, 0)),  # the end of the day
        (paris(2025, 6, 2, 18, 30), paris(2025, 6, 3, 13, 0)),  # after closing
        (paris(2025, 6, 2, 7, 0), paris(2025, 6, 2, 13, 0)),  # before opening
        (paris(2025, 6, 6, 15, 0), paris(2025, 6, 9, 11, 0)),  # Friday afternoon to Monday
        (paris(2025, 6, 7, 11, 0), paris(2025, 6, 9, 13, 0)),  # arriving on a Saturday
    ],
)
def test_business_hours_count_only_working_minutes(start, due):
    assert sla.deadline(start, policy(240, OFFICE)) == due


def test_a_long_sla_spans_several_working_days():
    # 20 working hours from Thursday 9:00: Thursday 8, Friday 8, Monday 4.
    assert sla.deadline(paris(2025, 6, 5, 9, 0), policy(20 * 60, OFFICE)) == paris(
        2025, 6, 9, 13, 0
    )


def test_a_weekend_with_a_daylight_saving_change_keeps_the_local_opening_hour():
    # Paris moves to summer time on Sunday 30 March 2025: Friday is UTC+1, Monday UTC+2.
    due = sla.deadline(paris(2025, 3, 28, 16, 0), policy(240, OFFICE))
    assert due == paris(2025, 3, 31, 12, 0)
    assert due == datetime(2025, 3, 31, 10, 0, tzinfo=UTC)


def test_the_american_change_falls_on_another_weekend():
    office = {**OFFICE, "timezone": "America/New_York"}
    due = sla.deadline(datetime(2025, 3, 7, 16, 0, tzinfo=NEW_YORK), policy(240, office))
    assert due == datetime(2025, 3, 10, 16, 0, tzinfo=UTC)  # 12:00 EDT


def test_a_window_that_spans_the_change_counts_real_minutes():
    always = {"timezone": "Europe/Paris", "days": list(range(7)), "start": "00:00", "end": "12:00"}
    # The spring change: Sunday's 00:00-12:00 lasts 11 hours, so 12 hours end on Monday at 01:00.
    spring = sla.deadline(paris(2025, 3, 30, 0, 0), policy(12 * 60, always))
    assert spring == paris(2025, 3, 31, 1, 0)
    # The autumn change: Sunday's 00:00-12:00 lasts 13 hours, all of them used.
    autumn = sla.deadline(paris(2025, 10, 26, 0, 0), policy(13 * 60, always))
    assert autumn == paris(2025, 10, 26, 12, 0)
    assert autumn - paris(2025, 10, 26, 0, 0).astimezone(UTC) == timedelta(hours=13)


def test_the_deadline_is_the_same_instant_whatever_zone_the_start_is_given_in():
    start = paris(2025, 6, 6, 15, 0)
    assert sla.deadline(start.astimezone(UTC), policy(240, OFFICE)) == sla.deadline(
        start, policy(240, OFFICE)
    )


# Time left --------------------------------------------------------------------------------------


def test_time_left_runs_until_the_decision(team):
    deployment = review_deployment_of(team)
    item = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=1))
    assert sla.time_left(item, T0) == timedelta(hours=1)
    assert sla.time_left(item, T0 + timedelta(hours=2)) == timedelta(hours=-1)
    item.status = ReviewStatus.DECIDED
    assert sla.time_left(item, T0) is None


# The check --------------------------------------------------------------------------------------


@pytest.fixture
def stopped(monkeypatch):  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


def sla_alerts(**filters) -> list[Alert]:  # type: ignore[no-untyped-def]
    return list(
        Alert.objects.filter(source=AlertSource.RULE, rule="review_sla", **filters).order_by("id")
    )


def test_breached_items_raise_one_alert_per_deployment(team, stopped):
    scorer = review_deployment_of(team)
    flagger = review_deployment_of(team, name="fraud-flagger")
    late = [
        queued_item_of(scorer, sla_deadline=T0 - timedelta(minutes=10)),
        queued_item_of(scorer, sla_deadline=T0 - timedelta(minutes=5), status="claimed"),
        queued_item_of(flagger, sla_deadline=T0),
    ]
    on_time = queued_item_of(scorer, sla_deadline=T0 + timedelta(minutes=1))
    queued_item_of(
        scorer, sla_deadline=T0 - timedelta(hours=1), status=ReviewStatus.DECIDED
    )  # decided in time or not, it no longer waits

    assert sla.check() == 3
    alerts = {alert.deployment_id: alert for alert in sla_alerts(status=AlertStatus.FIRING)}
    assert set(alerts) == {scorer.pk, flagger.pk}
    first = alerts[scorer.pk]
    assert first.fingerprint == f"review_sla:{scorer.pk}:"
    assert first.severity == "warning"
    assert first.team == team
    assert first.title == "2 review items are past their SLA on credit-scorer in production"
    assert first.evidence == {
        "breached": 2,
        "oldest_deadline": (T0 - timedelta(minutes=10)).isoformat(),
    }
    assert alerts[flagger.pk].title.startswith("1 review item is past")
    for item in late:
        item = ReviewItem.objects.get(pk=item.pk)
        assert item.sla_breached_at == item.sla_deadline
        assert item.events.filter(kind=ReviewEventKind.SLA_BREACHED).count() == 1
    assert ReviewItem.objects.get(pk=on_time.pk).sla_breached_at is None


def test_a_breach_is_marked_once_and_its_alert_refreshed(team, stopped):
    deployment = review_deployment_of(team)
    queued_item_of(deployment, sla_deadline=T0 - timedelta(minutes=1))
    assert sla.check() == 1
    (alert,) = sla_alerts()
    clock.advance(60)
    queued_item_of(deployment, sla_deadline=T0 + timedelta(seconds=30))
    assert sla.check() == 1  # only the new one
    assert sla.check() == 0
    (again,) = sla_alerts()
    assert again.pk == alert.pk and again.status == AlertStatus.FIRING
    assert again.evidence["breached"] == 2
    assert again.title.startswith("2 review items")


def test_the_alert_resolves_when_no_breached_item_is_left(team, stopped):
    scorer = review_deployment_of(team)
    flagger = review_deployment_of(team, name="fraud-flagger")
    late = queued_item_of(scorer, sla_deadline=T0 - timedelta(minutes=1))
    queued_item_of(flagger, sla_deadline=T0 - timedelta(minutes=1))
    sla.check()
    ReviewItem.objects.filter(pk=late.pk).update(status=ReviewStatus.DECIDED)
    clock.advance(60)
    assert sla.check() == 0
    by_deployment = {alert.deployment_id: alert for alert in sla_alerts()}
    assert by_deployment[scorer.pk].status == AlertStatus.RESOLVED
    assert by_deployment[scorer.pk].resolved_at == T0 + timedelta(seconds=60)
    assert by_deployment[flagger.pk].status == AlertStatus.FIRING


def test_no_breach_no_alert(team, stopped):
    deployment = review_deployment_of(team)
    queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=1))
    assert sla.check() == 0
    assert sla_alerts() == []


def test_an_appeal_breaching_its_new_deadline_is_marked_again(team, stopped):
    deployment = review_deployment_of(team)
    item = queued_item_of(deployment, sla_deadline=T0 - timedelta(hours=1))
    sla.check()
    # Decided late, then appealed: a new deadline, whatever reviews.appeals did to the stamp.
    ReviewItem.objects.filter(pk=item.pk).update(level=2, sla_deadline=T0 + timedelta(hours=1))
    assert sla.check() == 0
    clock.advance(2 * 3600)
    assert sla.check() == 1
    item = ReviewItem.objects.get(pk=item.pk)
    assert item.sla_breached_at == T0 + timedelta(hours=1)
    assert item.events.filter(kind=ReviewEventKind.SLA_BREACHED).count() == 2


def test_breaches_are_marked_in_bounded_batches(team, stopped, settings):
    settings.REVIEWS_SLA_BATCH = 2
    deployment = review_deployment_of(team)
    for minutes in range(5):
        queued_item_of(deployment, sla_deadline=T0 - timedelta(minutes=minutes))
    assert sla.check() == 5
    assert sla_alerts()[0].evidence["breached"] == 5


def test_the_control_planes_rule_sweep_leaves_the_sla_alert_alone(team, stopped):
    deployment = review_deployment_of(team)
    queued_item_of(deployment, sla_deadline=T0 - timedelta(minutes=1))
    sla.check()
    alert_rules.evaluate_all()
    assert [alert.status for alert in sla_alerts()] == [AlertStatus.FIRING]


# Scheduling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["reviews.check_sla", "reviews.expire_claims", "reviews.purge_summaries"]
)
def test_the_sweeps_run_on_beat_by_name(settings, name):
    assert settings.CELERY_BEAT_SCHEDULE[name]["task"] == name
    assert settings.CELERY_BEAT_SCHEDULE[name]["schedule"] > 0
    assert name in celery_app.tasks


def test_the_tasks_call_their_services(team, stopped):
    deployment = review_deployment_of(team)
    queued_item_of(deployment, sla_deadline=T0 - timedelta(minutes=1))
    assert tasks.check_sla() == 1
    assert tasks.expire_claims() == 0
    assert tasks.purge_summaries() == 0
