"""POST /api/v1/reviews/{ref}/appeal: the team's write token relays a subject's appeal of a
decided level-1 item, which reopens at level 2 (pending, unclaimed, a new SLA from now) with the
level-1 decision kept on the Appeal and in the history; a second appeal, or an appeal of an
undecided item, is 409 saying why; a bad statement is 400 naming it, with nothing written; the
first reviewer can never decide the appeal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import Forbidden
from identity.audit import Actor
from identity.models import AuditEvent
from reviews import decisions
from reviews.models import Appeal, ReviewEventKind, ReviewItem
from tests.factories import decided_item_of, queued_item_of, reviewer_in
from tests.support.stopped_clock import stopped_clock

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
STATEMENT = "I was employed for six years; the income figure is from before my promotion."


def url(item: ReviewItem) -> str:
    return f"/api/v1/reviews/{item.ref}/appeal"


def appeal(client: Any, item: ReviewItem, body: Any = None, **headers: str) -> Any:
    payload = {"statement": STATEMENT} if body is None else body
    return client.post(url(item), payload, format="json", headers=headers)


@pytest.fixture
def decided(deployment, reviewer) -> ReviewItem:
    """A level-1 item that rita overrode (declined -> approved), claimed fields cleared."""
    return decided_item_of(deployment, reviewer, decision="override", output={"label": "approved"})


def test_an_appeal_reopens_the_item_at_level_2_under_a_new_sla(
    client_for, decided, reviewer, monkeypatch
):
    with stopped_clock(monkeypatch, NOW):
        response = appeal(client_for("token:write"), decided)
    assert response.status_code == 201, response.json()
    outcome = response.json()
    assert (outcome["status"], outcome["level"], outcome["decision"], outcome["output"]) == (
        "pending",
        2,
        None,
        None,
    )
    assert outcome["appealable"] is False
    assert outcome["appeal"] == {
        "created_at": "2025-06-02T10:00:00Z",
        "appealed_decision": "override",
        "appealed_output": {"label": "approved"},
    }
    assert outcome["sla_deadline"] == "2025-06-02T14:00:00Z"  # 240 minutes from the appeal

    item = ReviewItem.objects.get(pk=decided.pk)
    assert (item.level, item.status, item.first_decided_by, item.decided_by) == (
        2,
        "pending",
        reviewer,
        None,
    )
    assert (item.claimed_by, item.claim_expires_at, item.sla_breached_at) == (None, None, None)
    assert item.sla_deadline == NOW + timedelta(minutes=240)
    filed = Appeal.objects.get(item=item)
    assert filed.statement == STATEMENT
    assert filed.submitted_by_label.startswith("token:fraud/")
    assert (filed.appealed_decision, filed.appealed_output) == ("override", {"label": "approved"})

    event = item.events.get(kind=ReviewEventKind.APPEALED)
    assert event.level == 2
    assert event.detail["appealed_decision"] == "override"
    audited = AuditEvent.objects.get(action="review.appeal")
    assert (audited.before["level"], audited.after["level"]) == (1, 2)
    # The subject's words stay on the Appeal: not in the history, not in the audit log.
    recorded = json.dumps(
        [list(item.events.values("detail")), [audited.before, audited.after, audited.reason]]
    )
    assert "promotion" not in recorded


def test_a_second_appeal_is_409_and_changes_nothing(client_for, decided):
    client = client_for("token:write")
    assert appeal(client, decided).status_code == 201
    again = appeal(client, decided, {"statement": "once more"})
    assert again.status_code == 409
    assert again.json()["errors"] == [
        {
            "field": "ref",
            "reason": "the item was already appealed, and the decision of an appeal is final",
        }
    ]
    assert Appeal.objects.get().statement == STATEMENT
    assert AuditEvent.objects.filter(action="review.appeal").count() == 1


@pytest.mark.parametrize("status", ["pending", "claimed"])
def test_an_undecided_item_cannot_be_appealed(client_for, deployment, reviewer, status):
    item = queued_item_of(
        deployment, status=status, claimed_by=reviewer if status == "claimed" else None
    )
    response = appeal(client_for("token:write"), item)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "ref"
    assert "not decided yet" in response.json()["detail"]
    assert not Appeal.objects.exists()
    item.refresh_from_db()
    assert (item.level, item.status) == (1, status)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"statement": ""}, "statement"),
        ({"statement": "   "}, "statement"),
        ({"statement": "s" * 4001}, "statement"),
        ({"statement": 5}, "statement"),
        ({"statement": None}, "statement"),
        ({}, "statement"),
        ({"statement": STATEMENT, "name": "Ada"}, "name"),
        (["statement"], None),
    ],
)
def test_a_bad_statement_is_400_naming_it_and_nothing_is_written(client_for, decided, body, field):
    response = appeal(client_for("token:write"), decided, body)
    assert response.status_code == 400, response.json()
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert not Appeal.objects.exists()
    decided.refresh_from_db()
    assert (decided.level, decided.status) == (1, "decided")
    assert not AuditEvent.objects.filter(action="review.appeal").exists()


def test_a_statement_of_4000_characters_is_taken(client_for, decided):
    response = appeal(client_for("token:write"), decided, {"statement": "s" * 4000})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("token:read", 403),
        ("viewer", 403),
        ("outsider", 404),
        ("anonymous", 401),
        ("maintainer", 201),
        ("token:write", 201),
    ],
)
def test_who_may_appeal(client_for, decided, who, status):
    response = appeal(client_for(who), decided)
    assert response.status_code == status
    assert Appeal.objects.exists() == (status == 201)


def test_another_teams_item_is_not_found(client_for, other_deployment, people):
    theirs = decided_item_of(other_deployment, people["outsider"])
    response = appeal(client_for("token:write"), theirs)
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "ref"
    assert not Appeal.objects.exists()


def test_a_retry_with_the_same_idempotency_key_replays_the_answer(client_for, decided):
    client = client_for("token:write")
    first = appeal(client, decided, **{"Idempotency-Key": "appeal-1"})
    again = appeal(client, decided, **{"Idempotency-Key": "appeal-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Appeal.objects.count() == 1


def test_the_appeal_goes_to_another_reviewer_whose_decision_is_final(
    client_for, team, deployment, reviewer
):
    """Through the real decision service (reviews.decisions): rita confirms, the subject
    appeals, rita is refused the appeal, sam overrides, and nothing more can be appealed."""
    sam = reviewer_in(team, "sam")
    item = queued_item_of(deployment)
    decisions.decide(
        actor=Actor.from_principal(reviewer),
        item=item,
        decision="confirm",
        reason="the income is below the threshold",
    )
    assert appeal(client_for("token:write"), item).status_code == 201

    item.refresh_from_db()
    with pytest.raises(Forbidden):
        decisions.decide(
            actor=Actor.from_principal(reviewer), item=item, decision="confirm", reason="still"
        )
    decisions.decide(
        actor=Actor.from_principal(sam),
        item=item,
        decision="override",
        reason="the statement explains the income",
        corrected_output={"label": "approved"},
    )
    outcome = client_for("token:read").get(f"/api/v1/reviews/{item.ref}/").json()
    assert (outcome["status"], outcome["level"], outcome["decision"], outcome["output"]) == (
        "decided",
        2,
        "override",
        {"label": "approved"},
    )
    assert outcome["appealable"] is False
    assert outcome["appeal"]["appealed_decision"] == "confirm"
    assert appeal(client_for("token:write"), item).status_code == 409
    assert list(item.events.values_list("kind", "level", "actor_label")) == [
        (ReviewEventKind.CLAIMED, 1, "rita"),
        (ReviewEventKind.DECIDED, 1, "rita"),
        (ReviewEventKind.APPEALED, 2, Appeal.objects.get().submitted_by_label),
        (ReviewEventKind.CLAIMED, 2, "sam"),
        (ReviewEventKind.DECIDED, 2, "sam"),
    ]
