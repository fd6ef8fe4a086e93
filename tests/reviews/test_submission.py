"""Taking in review items (reviews.submission.submit): an item with its history and audit event
but never its input summary there, idempotent on the ref, one item per (deployment, request id),
the SLA from the policy in business hours, and every bad value refused naming its field with
nothing written. Only the team's write token (or a maintainer) submits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import Conflict, Forbidden, ValidationFailed
from deployments import services as deployment_services
from identity.audit import Actor
from identity.models import AuditEvent
from identity.principals import TokenPrincipal
from reviews import submission
from reviews.models import ReviewEvent, ReviewEventKind, ReviewItem
from tests.factories import SYSTEM, make_token, review_deployment_of, submission_body
from tests.support.stopped_clock import stopped_clock

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def writer(team) -> Actor:  # type: ignore[no-untyped-def]
    """The serving process: a write token of the deployment's team."""
    token, _ = make_token(team, ["write"], name="serving")
    return Actor.from_principal(TokenPrincipal(token))


@pytest.fixture
def stopped(monkeypatch) -> Any:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, MONDAY_10):
        yield


def submit(actor: Actor, deployment: Any, body: dict[str, Any]) -> tuple[ReviewItem, bool]:
    values = {k: v for k, v in body.items() if k != "deployment"}
    return submission.submit(actor=actor, deployment=deployment, values=values)


def nothing_written() -> bool:
    return not (
        ReviewItem.objects.exists()
        or ReviewEvent.objects.exists()
        or AuditEvent.objects.filter(action="review.submit").exists()
    )


def test_it_takes_in_an_item_with_its_history_and_audit_event(writer, deployment, body, stopped):
    item, created = submit(writer, deployment, body)

    assert created
    item.refresh_from_db()
    assert (item.ref, item.team_id, item.deployment_id) == (
        body["ref"],
        deployment.model.team_id,
        deployment.pk,
    )
    assert (item.model_version, item.config_revision) == (
        deployment.stable_version,
        deployment.config.revision,
    )
    assert (item.track, item.request_id, item.mode, item.reason) == (
        "stable",
        body["request_id"],
        "held",
        "low_confidence",
    )
    assert item.prediction == body["prediction"] and item.confidence == 0.59
    assert item.input_summary == body["input_summary"]
    assert item.explanation == body["explanation"]
    assert (item.level, item.status, item.created_at) == (1, "pending", MONDAY_10)
    assert item.sla_deadline == MONDAY_10 + timedelta(minutes=240)

    [event] = item.events.all()
    assert (event.kind, event.actor_label) == (ReviewEventKind.SUBMITTED, "token:fraud/serving")
    assert event.detail == {"reason": "low_confidence", "mode": "held", "track": "stable"}
    [audited] = AuditEvent.objects.filter(action="review.submit")
    assert (audited.target_id, audited.team_id) == (str(item.pk), deployment.model.team_id)
    assert audited.after["ref"] == body["ref"]
    assert audited.after["config_revision"] == deployment.config.revision


def test_the_input_summary_never_reaches_history_or_audit(writer, deployment, body):
    body["input_summary"] = {"surname": "Lovelace-unique-marker", "income": 52000}
    item, _ = submit(writer, deployment, body)
    recorded = json.dumps(
        [
            list(ReviewEvent.objects.values("detail", "actor_label")),
            list(AuditEvent.objects.values("before", "after", "reason", "target_label")),
        ]
    )
    assert "Lovelace-unique-marker" not in recorded
    assert "surname" not in recorded and "input_summary" not in recorded
    assert item.input_summary["surname"] == "Lovelace-unique-marker"


def test_it_makes_a_ref_when_none_is_given(writer, deployment, body):
    del body["ref"]
    item, created = submit(writer, deployment, body)
    assert created and submission.REF_RE.match(item.ref)
    assert item.ref != submit(writer, deployment, {**body, "request_id": "another"})[0].ref


def test_the_same_ref_again_is_the_same_item(writer, deployment, body):
    first, created = submit(writer, deployment, body)
    again, created_again = submit(writer, deployment, body)
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert ReviewItem.objects.count() == 1
    assert ReviewEvent.objects.count() == 1
    assert AuditEvent.objects.filter(action="review.submit").count() == 1


def test_a_retry_after_the_policy_was_switched_off_still_finds_its_item(writer, deployment, body):
    first, _ = submit(writer, deployment, body)
    deployment_services.deployment_configure(actor=SYSTEM, deployment=deployment, review_policy={})
    deployment.refresh_from_db()
    again, created = submit(writer, deployment, body)
    assert (again.pk, created) == (first.pk, False)


def test_another_ref_for_the_same_request_is_a_conflict_naming_request_id(writer, deployment, body):
    submit(writer, deployment, body)
    with pytest.raises(Conflict) as refused:
        submit(writer, deployment, {**body, "ref": "rv_anotherreference0001"})
    assert refused.value.field == "request_id"
    assert ReviewItem.objects.count() == 1


def test_a_ref_of_another_request_is_a_conflict_naming_ref(writer, deployment, body):
    submit(writer, deployment, body)
    with pytest.raises(Conflict) as refused:
        submit(writer, deployment, {**body, "request_id": "req-something-else"})
    assert refused.value.field == "ref"
    assert ReviewItem.objects.count() == 1


def test_the_same_request_id_on_another_deployment_is_another_item(team, writer, deployment, body):
    eu_deployment = review_deployment_of(team, name="credit-scorer-eu", environment="eu")
    submit(writer, deployment, body)
    other, created = submit(
        writer,
        eu_deployment,
        {**body, "ref": "rv_sameRequestOtherDeploy", "model": "credit-scorer-eu"},
    )
    assert created and other.request_id == body["request_id"]


def test_the_deadline_counts_business_hours_only(team, writer, monkeypatch):
    policy = {
        "all": True,
        "sla_minutes": 120,
        "business_hours": {
            "timezone": "UTC",
            "days": [0, 1, 2, 3, 4],
            "start": "09:00",
            "end": "17:00",
        },
    }
    deployment = review_deployment_of(team, name="office-hours", policy=policy)
    friday_16 = datetime(2025, 6, 6, 16, 0, tzinfo=UTC)
    with stopped_clock(monkeypatch, friday_16):
        item, _ = submit(writer, deployment, submission_body(deployment))
    # One hour on Friday, the second on Monday morning.
    assert item.sla_deadline == datetime(2025, 6, 9, 10, 0, tzinfo=UTC)


# Refusals ---------------------------------------------------------------------------------------

LONG = "x" * 1001


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ref": "not-a-ref"}, "ref"),
        ({"ref": "rv_short"}, "ref"),
        ({"ref": "rv_" + "a" * 61}, "ref"),
        ({"ref": "rv_has spaces in it 0001"}, "ref"),
        ({"ref": 12345}, "ref"),
        ({"model": ""}, "model"),
        ({"model": 7}, "model"),
        ({"version": "1"}, "version"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"track": "c" * 21}, "track"),
        ({"track": "can ary"}, "track"),
        ({"track": None}, "track"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": "r" * 129}, "request_id"),
        ({"request_id": "line\nbreak"}, "request_id"),
        ({"request_id": 42}, "request_id"),
        ({"mode": "sometimes"}, "mode"),
        ({"reason": "because"}, "reason"),
        ({"prediction": {}}, "prediction"),
        ({"prediction": ["declined"]}, "prediction"),
        ({"prediction": {"label": "x" * (16 * 1024)}}, "prediction"),
        ({"prediction": {"score": float("nan")}}, "prediction"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"confidence": "0.5"}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"input_summary": ["income"]}, "input_summary"),
        ({"input_summary": {f"f{i}": i for i in range(51)}}, "input_summary"),
        ({"input_summary": {"": 1}}, "input_summary"),
        ({"input_summary": {"k" * 101: 1}}, "input_summary"),
        ({"input_summary": {"notes": LONG}}, "input_summary.notes"),
        ({"input_summary": {"address": {"city": "Oslo"}}}, "input_summary.address"),
        ({"input_summary": {"tags": ["a", "b"]}}, "input_summary.tags"),
        ({"input_summary": {"score": float("inf")}}, "input_summary.score"),
        ({"explanation": "because"}, "explanation"),
        ({"explanation": {"weights": "w" * (32 * 1024)}}, "explanation"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field_and_nothing_is_written(
    writer, deployment, body, change, field
):
    with pytest.raises(ValidationFailed) as refused:
        submit(writer, deployment, {**body, **change})
    assert refused.value.field == field
    assert nothing_written()


@pytest.mark.parametrize(
    "missing", ["model", "version", "request_id", "mode", "reason", "prediction"]
)
def test_a_missing_field_is_refused_naming_it(writer, deployment, body, missing):
    del body[missing]
    with pytest.raises(ValidationFailed) as refused:
        submit(writer, deployment, body)
    assert (refused.value.field, refused.value.reason) == (missing, "is required")
    assert nothing_written()


def test_the_optional_fields_may_be_left_out(writer, deployment, body):
    for name in ("track", "confidence", "input_summary", "explanation"):
        del body[name]
    item, created = submit(writer, deployment, body)
    assert created
    assert (item.track, item.confidence, item.input_summary, item.explanation) == (
        "",
        None,
        None,
        None,
    )


def test_a_summary_at_the_limits_is_taken(writer, deployment, body):
    summary: dict[str, Any] = {f"f{i}": i for i in range(49)}
    summary["notes"] = "n" * 1000
    body["input_summary"] = summary
    item, created = submit(writer, deployment, body)
    assert created and len(item.input_summary) == 50


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"model": "someone-elses-model"}, "model", "is not the model of deployment"),
        ({"version": 9}, "version", "credit-scorer has no version 9"),
    ],
)
def test_the_model_and_version_must_be_the_deployments(
    writer, deployment, body, change, field, reason
):
    with pytest.raises(ValidationFailed) as refused:
        submit(writer, deployment, {**body, **change})
    assert refused.value.field == field and refused.value.reason.startswith(reason)
    assert nothing_written()


def test_a_deployment_without_a_review_policy_takes_nothing(writer, deployment, body):
    deployment_services.deployment_configure(actor=SYSTEM, deployment=deployment, review_policy={})
    deployment.refresh_from_db()
    with pytest.raises(ValidationFailed) as refused:
        submit(writer, deployment, body)
    assert (refused.value.field, refused.value.reason) == ("deployment", "has no review policy")
    assert nothing_written()


@pytest.mark.parametrize("who", ["token:read", "viewer", "outsider", "token:other-team"])
def test_only_the_teams_writers_submit(team, other_team, people, deployment, body, who):
    if who == "token:read":
        token, _ = make_token(team, ["read"])
        principal: Any = TokenPrincipal(token)
    elif who == "token:other-team":
        token, _ = make_token(other_team, ["write"])
        principal = TokenPrincipal(token)
    else:
        principal = people[who]
    with pytest.raises(Forbidden):
        submit(Actor.from_principal(principal), deployment, body)
    assert nothing_written()


def test_a_maintainer_may_submit_by_hand(people, deployment, body):
    item, created = submit(Actor.from_principal(people["maintainer"]), deployment, body)
    assert created and item.events.get().actor == people["maintainer"]
