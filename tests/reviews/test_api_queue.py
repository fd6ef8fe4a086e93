"""The reviewers' API (reviews/api/queue.py): only members of the owning team with the reviewer
duty see the queue and an item's review, claim, release and decide; a member without the duty
is refused, another team's item is not found, a CI token is refused with the reason (a person
decides). Bad input names the field and writes nothing; the queue's query count does not grow
with its length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core import clock
from reviews.models import ReviewEvent, ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import (
    give_duty,
    make_token,
    queued_item_of,
    review_deployment_of,
    reviewer_in,
)
from tests.support.stopped_clock import stopped_clock

QUEUE = "/api/v1/reviews/queue"
CLAIM_NEXT = "/api/v1/reviews/claim-next"
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
TOKEN_REFUSAL = "CI tokens cannot read review items; a person decides."


def url(item: ReviewItem, verb: str) -> str:
    return f"/api/v1/reviews/{item.ref}/{verb}"


@pytest.fixture(autouse=True)
def stopped(monkeypatch):  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def deployment(team, people):  # type: ignore[no-untyped-def]
    """credit-scorer of "fraud"; its viewer has the reviewer duty (the owner does not)."""
    give_duty(people["viewer"], team, is_reviewer=True)
    return review_deployment_of(team)


@pytest.fixture
def item(deployment):  # type: ignore[no-untyped-def]
    return queued_item_of(
        deployment, sla_deadline=T0 + timedelta(hours=1), explanation={"income": -0.3}
    )


@pytest.fixture
def foreign_item(other_team):  # type: ignore[no-untyped-def]
    return queued_item_of(review_deployment_of(other_team, name="search-ranker"))


def as_user(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=user.pk))
    return client


def field_of(response) -> str | None:  # type: ignore[no-untyped-def]
    return response.json()["errors"][0]["field"]


# The queue --------------------------------------------------------------------------------------


def test_a_reviewer_sees_the_open_items_of_the_team_by_deadline(
    client_for, deployment, item, foreign_item
):
    later = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=3))
    queued_item_of(deployment, status=ReviewStatus.DECIDED, sla_deadline=T0)
    response = client_for("viewer").get(QUEUE)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["count"] == 2
    rows = body["results"]
    assert [row["ref"] for row in rows] == [item.ref, later.ref]
    first = rows[0]
    assert first["deployment"] == deployment.pk and first["model"] == "credit-scorer"
    assert first["environment"] == "production" and first["version"] == 1
    assert first["sla_seconds_left"] == 3600 and first["sla_breached"] is False
    assert first["may_take"] is True and first["claimed_by"] is None
    assert first["prediction"]["label"] == "declined"
    assert "input_summary" not in first  # the list stays light; the review page shows it


def test_the_queue_marks_what_the_reviewer_may_not_take(team, people, client_for, deployment):
    bob = reviewer_in(team, "bob")
    held = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=1))
    as_user(bob).post(url(held, "claim"))
    own_appeal = queued_item_of(
        deployment, level=2, first_decided_by=people["viewer"], sla_deadline=T0 + timedelta(2)
    )
    lapsed = queued_item_of(
        deployment,
        status=ReviewStatus.CLAIMED,
        claimed_by=bob,
        claim_expires_at=T0 - timedelta(minutes=1),
        sla_deadline=T0 - timedelta(minutes=5),
    )
    rows = client_for("viewer").get(QUEUE).json()["results"]
    marks = {row["ref"]: (row["may_take"], row["claimed_by"]) for row in rows}
    assert marks == {
        lapsed.ref: (True, "bob"),
        held.ref: (False, "bob"),
        own_appeal.ref: (False, None),
    }
    assert next(row for row in rows if row["ref"] == lapsed.ref)["sla_breached"] is True


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("viewer", 200),  # the reviewer
        ("admin", 200),
        ("owner", 403),  # a member without the duty
        ("maintainer", 403),
        ("outsider", 403),  # a reviewer nowhere
        ("token:read", 403),
        ("token:write", 403),
        ("anonymous", 401),
    ],
)
def test_the_queue_per_role(client_for, item, who, code):
    response = client_for(who).get(QUEUE)
    assert response.status_code == code
    if who.startswith("token:"):
        assert response.json()["detail"] == TOKEN_REFUSAL


def test_a_reviewer_of_another_team_never_sees_this_teams_items(
    other_team, people, client_for, item, foreign_item
):
    give_duty(people["outsider"], other_team, is_reviewer=True)
    rows = client_for("outsider").get(QUEUE).json()["results"]
    assert [row["ref"] for row in rows] == [foreign_item.ref]


def test_the_queue_filters_by_deployment_and_level(team, client_for, deployment, item):
    other = review_deployment_of(team, name="fraud-flagger")
    elsewhere = queued_item_of(other)
    appeal = queued_item_of(deployment, level=2)
    client = client_for("viewer")

    def refs(query: str) -> set[str]:
        response = client.get(f"{QUEUE}?{query}")
        assert response.status_code == 200, response.json()
        return {row["ref"] for row in response.json()["results"]}

    assert refs(f"deployment={deployment.pk}") == {item.ref, appeal.ref}
    assert refs(f"deployment={other.pk}") == {elsewhere.ref}
    assert refs("level=2") == {appeal.ref}
    assert refs(f"deployment={deployment.pk}&level=1") == {item.ref}


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("level=3", 400, "level"),
        ("deployment=abc", 400, "deployment"),
        ("colour=red", 400, "colour"),
    ],
)
def test_a_bad_filter_names_it(client_for, item, query, code, field):
    response = client_for("viewer").get(f"{QUEUE}?{query}")
    assert response.status_code == code
    assert field_of(response) == field


def test_a_deployment_of_another_team_is_not_found(client_for, item, foreign_item):
    response = client_for("viewer").get(f"{QUEUE}?deployment={foreign_item.deployment_id}")
    assert response.status_code == 404
    assert field_of(response) == "deployment"


def test_the_queue_is_paginated(client_for, deployment):
    for hours in range(3):
        queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=hours))
    body = client_for("viewer").get(f"{QUEUE}?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_the_queue_costs_the_same_queries_with_one_item_or_fifty(team, people, deployment):
    bob = reviewer_in(team, "bob")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = as_user(people["viewer"]).get(QUEUE)
        assert response.status_code == 200
        return len(queries)

    queued_item_of(deployment, status=ReviewStatus.CLAIMED, claimed_by=bob)
    small = count()
    for i in range(49):
        queued_item_of(
            review_deployment_of(team, name=f"model-{i}") if i % 10 == 0 else deployment,
            level=1 + i % 2,
            status=ReviewStatus.CLAIMED if i % 3 == 0 else ReviewStatus.PENDING,
            claimed_by=bob if i % 3 == 0 else None,
            claim_expires_at=T0 + timedelta(minutes=5) if i % 3 == 0 else None,
        )
    assert count() == small


# An item's review -------------------------------------------------------------------------------


def test_a_reviewer_reads_the_item_with_its_input_summary(client_for, item):
    response = client_for("viewer").get(url(item, "review"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ref"] == item.ref
    assert body["input_summary"] == {"income": 52000, "region": "north"}
    assert body["explanation"] == {"income": -0.3}
    assert body["may_take"] is True
    assert body["appeal"] is None and body["decision"] == "" and body["output"] is None


@pytest.mark.parametrize(
    ("who", "code"),
    [("owner", 403), ("maintainer", 403), ("outsider", 404), ("token:read", 403)],
)
def test_the_review_page_per_role(client_for, item, who, code):
    response = client_for(who).get(url(item, "review"))
    assert response.status_code == code
    if who.startswith("token:"):
        assert response.json()["detail"] == TOKEN_REFUSAL


def test_a_token_of_another_team_does_not_learn_the_item_exists(other_team, item):
    _, secret = make_token(other_team, ["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(url(item, "review")).status_code == 404


def test_an_unknown_reference_is_not_found(client_for, item):
    response = client_for("viewer").get("/api/v1/reviews/rv_nothing_like_this_one/review")
    assert response.status_code == 404
    assert field_of(response) == "ref"


def test_the_history_lists_who_did_what(client_for, item):
    client = client_for("viewer")
    client.post(url(item, "claim"))
    client.post(url(item, "decide"), {"decision": "confirm", "reason": "fine"}, format="json")
    response = client.get(url(item, "history"))
    assert response.status_code == 200
    assert [(e["kind"], e["actor"]) for e in response.json()] == [
        ("claimed", "viewer"),
        ("decided", "viewer"),
    ]
    assert client_for("outsider").get(url(item, "history")).status_code == 404
    assert client_for("owner").get(url(item, "history")).status_code == 403


# Claims -----------------------------------------------------------------------------------------


def test_claim_and_release(client_for, item):
    client = client_for("viewer")
    claimed = client.post(url(item, "claim"))
    assert claimed.status_code == 200, claimed.json()
    body = claimed.json()
    assert body["status"] == "claimed" and body["claimed_by"] == "viewer"
    assert body["claim_expires_at"] == "2025-06-02T10:30:00Z"
    assert body["may_take"] is True  # the holder may decide it
    released = client.post(url(item, "release"), {"reason": "not my area"}, format="json")
    assert released.status_code == 200
    assert released.json()["status"] == "pending" and released.json()["claimed_by"] is None


def test_a_claim_someone_else_holds_is_a_conflict(team, client_for, item):
    as_user(reviewer_in(team, "bob")).post(url(item, "claim"))
    response = client_for("viewer").post(url(item, "claim"))
    assert response.status_code == 409
    assert field_of(response) == "claimed_by"
    assert client_for("viewer").post(url(item, "release")).status_code == 409


def test_an_appeal_is_refused_to_the_first_decider(people, client_for, deployment):
    appeal = queued_item_of(deployment, level=2, first_decided_by=people["viewer"])
    client = client_for("viewer")
    for verb, body in (("claim", None), ("decide", {"decision": "confirm", "reason": "x"})):
        response = client.post(url(appeal, verb), body, format="json")
        assert response.status_code == 403
        assert response.json()["detail"] == (
            "an appeal goes to a different reviewer than the one who decided"
        )
    assert client.get(url(appeal, "review")).json()["may_take"] is False
    assert not ReviewEvent.objects.filter(item=appeal).exists()


@pytest.mark.parametrize(
    ("who", "code"),
    [("owner", 403), ("outsider", 404), ("token:write", 403), ("anonymous", 401)],
)
def test_only_a_reviewer_claims(client_for, item, who, code):
    assert client_for(who).post(url(item, "claim")).status_code == code
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewStatus.PENDING


def test_claim_next_hands_out_the_earliest_deadline(client_for, deployment, item):
    sooner = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=5))
    client = client_for("viewer")
    first = client.post(CLAIM_NEXT, {}, format="json")
    assert first.status_code == 200 and first.json()["ref"] == sooner.ref
    second = client.post(CLAIM_NEXT, {"deployment": deployment.pk}, format="json")
    assert second.status_code == 200 and second.json()["ref"] == item.ref
    assert client.post(CLAIM_NEXT, {}, format="json").status_code == 204


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"deployment": "one"}, 400, "deployment"),
        ({"level": 3}, 400, "level"),
        ({"team": "fraud"}, 400, "team"),
    ],
)
def test_claim_next_bad_input_names_the_field(client_for, item, body, code, field):
    response = client_for("viewer").post(CLAIM_NEXT, body, format="json")
    assert response.status_code == code
    assert field_of(response) == field
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewStatus.PENDING


def test_claim_next_refuses_another_teams_deployment_and_tokens(client_for, item, foreign_item):
    foreign = {"deployment": foreign_item.deployment_id}
    assert client_for("viewer").post(CLAIM_NEXT, foreign, format="json").status_code == 404
    response = client_for("token:write").post(CLAIM_NEXT, {}, format="json")
    assert response.status_code == 403
    assert "a person decides" in response.json()["detail"]
    assert client_for("owner").post(CLAIM_NEXT, {}, format="json").status_code == 403


# Decisions --------------------------------------------------------------------------------------


def test_a_reviewer_overrides_through_the_api(client_for, item):
    response = client_for("viewer").post(
        url(item, "decide"),
        {"decision": "override", "reason": "income verified", "output": {"label": "approved"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "decided" and body["decision"] == "override"
    assert body["output"] == {"label": "approved"}
    assert body["decided_by"] == "viewer" and body["decided_at"] == "2025-06-02T10:00:00Z"
    assert body["may_take"] is False
    assert ReviewItem.objects.get(pk=item.pk).events.filter(kind=ReviewEventKind.DECIDED).exists()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"reason": "x"}, 400, "decision"),
        ({"decision": 1, "reason": "x"}, 400, "decision"),
        ({"decision": "confirm"}, 400, "reason"),
        ({"decision": "confirm", "reason": "x" * 2001}, 400, "reason"),
        ({"decision": "confirm", "reason": "x", "verdict": "yes"}, 400, "verdict"),
        ({"decision": "maybe", "reason": "x"}, 422, "decision"),
        ({"decision": "confirm", "reason": "  "}, 422, "reason"),
        ({"decision": "override", "reason": "x"}, 422, "output"),
        ({"decision": "override", "reason": "x", "output": ["approved"]}, 422, "output"),
        ({"decision": "override", "reason": "x", "output": {}}, 422, "output"),
        ({"decision": "confirm", "reason": "x", "output": {"label": "a"}}, 422, "output"),
    ],
)
def test_a_bad_decision_names_the_field_and_writes_nothing(client_for, item, body, code, field):
    response = client_for("viewer").post(url(item, "decide"), body, format="json")
    assert response.status_code == code, response.json()
    assert field_of(response) == field
    stored = ReviewItem.objects.get(pk=item.pk)
    assert stored.status == ReviewStatus.PENDING and stored.claimed_by is None
    assert not ReviewEvent.objects.filter(item=item).exists()


def test_a_decided_item_is_a_conflict(client_for, item):
    client = client_for("viewer")
    decide = {"decision": "confirm", "reason": "fine"}
    assert client.post(url(item, "decide"), decide, format="json").status_code == 200
    clock.advance(60)
    response = client.post(url(item, "decide"), decide, format="json")
    assert response.status_code == 409
    assert field_of(response) == "status"
    assert client.post(url(item, "claim")).status_code == 409


@pytest.mark.parametrize(
    ("who", "code"),
    [("owner", 403), ("outsider", 404), ("token:write", 403), ("anonymous", 401)],
)
def test_only_a_reviewer_decides(client_for, item, who, code):
    response = client_for(who).post(
        url(item, "decide"), {"decision": "confirm", "reason": "fine"}, format="json"
    )
    assert response.status_code == code
    assert ReviewItem.objects.get(pk=item.pk).status == ReviewStatus.PENDING


def test_the_routes_answer_only_their_methods(client_for, item):
    client = client_for("viewer")
    assert client.get(url(item, "claim")).status_code == 405
    assert client.post(QUEUE).status_code == 405
    assert client.get(CLAIM_NEXT).status_code == 405
