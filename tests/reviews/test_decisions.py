"""Decisions (reviews.decisions.decide): a reviewer confirms or overrides an item with a reason;
an unclaimed item is claimed on the way, someone else's live claim is theirs, an appeal never
goes back to the reviewer who decided it, and every bad input is refused naming its field with
nothing written. The input summary never reaches the history or the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.errors import Conflict, Forbidden, ValidationFailed
from identity.audit import Actor
from identity.models import AuditEvent
from identity.principals import TokenPrincipal
from reviews import appeals, claims, decisions
from reviews.models import CallbackDelivery, ReviewEvent, ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import make_token, queued_item_of, review_deployment_of
from tests.reviews.conftest import as_, fresh, kinds
from tests.support.stopped_clock import stopped_clock

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
PREDICTION = {"label": "declined", "probabilities": {"approved": 0.4, "declined": 0.6}}
CALLBACK_POLICY = {
    "all": True,
    "callback_url": "https://loans.example.com/review-outcomes",
    "callback_secret_env": "LOANS_REVIEW_SECRET",
}


@pytest.fixture(autouse=True)
def stopped(monkeypatch):  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    return review_deployment_of(team)


@pytest.fixture
def item(deployment):  # type: ignore[no-untyped-def]
    return queued_item_of(deployment, prediction=PREDICTION)


# Deciding ---------------------------------------------------------------------------------------


def test_a_reviewer_confirms_the_prediction(item, alice):
    claims.claim(actor=as_(alice), item=item)
    clock.advance(5 * 60)
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="income verified")
    item = fresh(item)
    assert item.status == ReviewStatus.DECIDED
    assert item.decision == "confirm"
    assert item.final_output == PREDICTION
    assert item.decision_reason == "income verified"
    assert item.decided_by == alice and item.first_decided_by == alice
    assert item.decided_at == T0 + timedelta(minutes=5)
    assert (item.claimed_by, item.claim_expires_at) == (None, None)  # a decision holds no claim
    assert kinds(item) == [ReviewEventKind.CLAIMED, ReviewEventKind.DECIDED]
    decided = item.events.get(kind=ReviewEventKind.DECIDED)
    assert decided.detail == {"decision": "confirm", "level": 1, "reason": "income verified"}
    audit = AuditEvent.objects.get(action="review.decide")
    assert audit.after == {"decision": "confirm", "level": 1, "status": "decided"}
    assert audit.reason == "income verified"


def test_a_reviewer_overrides_with_the_corrected_output(item, alice):
    decisions.decide(
        actor=as_(alice),
        item=item,
        decision="override",
        reason="the payslip shows twice the declared income",
        corrected_output={"label": "approved"},
    )
    item = fresh(item)
    assert item.decision == "override"
    assert item.final_output == {"label": "approved"}
    assert item.prediction == PREDICTION  # what the model said stays


def test_deciding_an_unclaimed_item_claims_it_in_the_same_stroke(item, alice):
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    assert kinds(item) == [ReviewEventKind.CLAIMED, ReviewEventKind.DECIDED]
    claimed = fresh(item).events.get(kind=ReviewEventKind.CLAIMED)
    assert claimed.actor == alice


def test_someone_elses_live_claim_is_theirs_to_decide(item, alice, bob):
    claims.claim(actor=as_(bob), item=item)
    with pytest.raises(Conflict) as refused:
        decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    assert refused.value.field == "claimed_by"
    item = fresh(item)
    assert item.status == ReviewStatus.CLAIMED and item.claimed_by == bob
    assert kinds(item) == [ReviewEventKind.CLAIMED]


def test_a_lapsed_claim_of_someone_else_does_not_stop_a_decision(item, alice, bob):
    claims.claim(actor=as_(bob), item=item)
    clock.advance(31 * 60)
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    assert fresh(item).decided_by == alice
    assert kinds(item) == [
        ReviewEventKind.CLAIMED,
        ReviewEventKind.CLAIM_EXPIRED,
        ReviewEventKind.CLAIMED,
        ReviewEventKind.DECIDED,
    ]


def test_a_decided_item_is_not_decided_again(item, alice, bob):
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    with pytest.raises(Conflict) as refused:
        decisions.decide(
            actor=as_(bob),
            item=item,
            decision="override",
            reason="no",
            corrected_output={"label": "approved"},
        )
    assert refused.value.field == "status"
    assert fresh(item).decided_by == alice


# Appeals (level 2) ------------------------------------------------------------------------------


def appealed(item: ReviewItem) -> ReviewItem:
    """The decided item appealed through reviews.appeals, as a team's write token relays it."""
    token, _ = make_token(item.team, ["write"])
    appeals.appeal(
        actor=Actor.from_principal(TokenPrincipal(token)),
        item=item,
        statement="I repaid that loan in 2019.",
    )
    return fresh(item)


def test_the_first_decider_never_decides_the_appeal(item, alice):
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    item = appealed(item)
    with pytest.raises(Forbidden) as refused:
        decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="still fine")
    assert refused.value.reason == (
        "an appeal goes to a different reviewer than the one who decided"
    )
    assert fresh(item).status == ReviewStatus.PENDING
    assert kinds(item) == [
        ReviewEventKind.CLAIMED,
        ReviewEventKind.DECIDED,
        ReviewEventKind.APPEALED,
    ]


def test_another_reviewer_decides_the_appeal_for_good(item, alice, bob):
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    item = appealed(item)
    decisions.decide(
        actor=as_(bob),
        item=item,
        decision="override",
        reason="the appeal shows a paid-off loan",
        corrected_output={"label": "approved"},
    )
    item = fresh(item)
    assert item.level == 2 and item.status == ReviewStatus.DECIDED
    assert item.decided_by == bob
    assert item.first_decided_by == alice  # level 1's decider is kept
    decided = item.events.filter(kind=ReviewEventKind.DECIDED).order_by("id").last()
    assert decided.level == 2 and decided.detail["level"] == 2


# Bad input: refused naming the field, nothing written --------------------------------------------

BAD = [
    ({"decision": "maybe", "reason": "x"}, "decision"),
    ({"decision": None, "reason": "x"}, "decision"),
    ({"decision": "confirm", "reason": ""}, "reason"),
    ({"decision": "confirm", "reason": "   "}, "reason"),
    ({"decision": "confirm", "reason": None}, "reason"),
    ({"decision": "confirm", "reason": "x" * 2001}, "reason"),
    ({"decision": "confirm", "reason": "x", "corrected_output": {"label": "approved"}}, "output"),
    ({"decision": "override", "reason": "x"}, "output"),
    ({"decision": "override", "reason": "x", "corrected_output": ["approved"]}, "output"),
    ({"decision": "override", "reason": "x", "corrected_output": "approved"}, "output"),
    ({"decision": "override", "reason": "x", "corrected_output": {}}, "output"),
    (
        {"decision": "override", "reason": "x", "corrected_output": {"score": float("nan")}},
        "output",
    ),
    ({"decision": "override", "reason": "x", "corrected_output": {"a": "x" * 17_000}}, "output"),
    ({"decision": "override", "reason": "x", "corrected_output": PREDICTION}, "output"),
]


@pytest.mark.parametrize(("values", "field"), BAD)
def test_bad_input_is_refused_naming_the_field(item, alice, values, field):
    with pytest.raises(ValidationFailed) as refused:
        decisions.decide(actor=as_(alice), item=item, **values)
    assert refused.value.field == field
    item = fresh(item)
    assert item.status == ReviewStatus.PENDING and item.claimed_by is None
    assert not ReviewEvent.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="review.").exists()


def test_a_reason_of_exactly_2000_characters_is_taken(item, alice):
    decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="x" * 2000)
    assert len(fresh(item).decision_reason) == 2000


# Who decides ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "viewer", "outsider"])
def test_deciding_needs_the_reviewer_duty_in_the_items_team(item, people, who):
    with pytest.raises(Forbidden):
        decisions.decide(actor=as_(people[who]), item=item, decision="confirm", reason="fine")
    assert fresh(item).status == ReviewStatus.PENDING


def test_a_token_never_decides(team, item):
    token, _ = make_token(team, ["write"])
    with pytest.raises(Forbidden) as refused:
        decisions.decide(
            actor=Actor.from_principal(TokenPrincipal(token)),
            item=item,
            decision="confirm",
            reason="fine",
        )
    assert "a person decides" in refused.value.reason


# Privacy and the outcome's callback -------------------------------------------------------------


def test_the_input_summary_stays_out_of_history_and_audit(item, alice):
    decisions.decide(
        actor=as_(alice),
        item=item,
        decision="override",
        reason="checked",
        corrected_output={"label": "approved"},
    )
    events = list(ReviewEvent.objects.values("detail", "actor_label"))
    audits = list(AuditEvent.objects.values("before", "after", "reason", "target_label"))
    written = json.dumps([events, audits], default=str)
    assert "52000" not in written and "north" not in written


def test_a_decision_records_the_callback_delivery_and_sends_it_after_commit(
    team, alice, django_capture_on_commit_callbacks
):
    deployment = review_deployment_of(team, name="loan-approver", policy=CALLBACK_POLICY)
    item = queued_item_of(deployment)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    delivery = CallbackDelivery.objects.get(item=item)
    assert delivery.level == 1
    assert delivery.url == "https://loans.example.com/review-outcomes"
    assert len(sent) == 1


def test_no_callback_without_a_callback_url(item, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    assert not CallbackDelivery.objects.exists()
    assert sent == []


def test_a_refused_decision_records_no_callback(team, alice, bob):
    deployment = review_deployment_of(team, name="loan-approver", policy=CALLBACK_POLICY)
    item = queued_item_of(deployment)
    claims.claim(actor=as_(bob), item=item)
    with pytest.raises(Conflict):
        decisions.decide(actor=as_(alice), item=item, decision="confirm", reason="fine")
    assert not CallbackDelivery.objects.exists()
