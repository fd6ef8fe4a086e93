"""Claims on review items (reviews.claims): a reviewer takes an item for the policy's lease, gives
it back, or lets it lapse; nobody takes an item someone else holds; an appeal never goes to the
reviewer who decided it; claim_next hands out the earliest deadline first. Time moves with the
engine's clock, stopped at a Monday morning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.errors import Conflict, Forbidden
from identity.audit import Actor
from identity.models import AuditEvent
from identity.principals import TokenPrincipal
from reviews import claims
from reviews.models import ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import (
    make_token,
    queued_item_of,
    review_deployment_of,
)
from tests.reviews.conftest import as_, fresh, kinds
from tests.support.stopped_clock import stopped_clock

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def stopped(monkeypatch):  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    return review_deployment_of(team)


# claim ------------------------------------------------------------------------------------------


def test_a_reviewer_claims_an_item_for_the_policys_lease(deployment, alice):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    item = fresh(item)
    assert item.status == ReviewStatus.CLAIMED
    assert item.claimed_by == alice
    assert item.claimed_at == T0
    assert item.claim_expires_at == T0 + timedelta(minutes=30)
    assert kinds(item) == [ReviewEventKind.CLAIMED]
    event = item.events.get()
    assert event.actor == alice and event.detail["renewed"] is False
    assert AuditEvent.objects.filter(action="review.claim", target_id=str(item.pk)).count() == 1


def test_the_lease_comes_from_the_policy_that_selected_the_item(team, alice):
    deployment = review_deployment_of(team, policy={"all": True, "claim_minutes": 10})
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    assert fresh(item).claim_expires_at == T0 + timedelta(minutes=10)


def test_claiming_again_renews_the_lease(deployment, alice):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    clock.advance(20 * 60)
    claims.claim(actor=as_(alice), item=item)
    item = fresh(item)
    assert item.claimed_at == T0  # held since the first claim
    assert item.claim_expires_at == T0 + timedelta(minutes=50)
    assert [e.detail["renewed"] for e in item.events.order_by("id")] == [False, True]


def test_nobody_takes_an_item_someone_else_holds(deployment, alice, bob):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    with pytest.raises(Conflict) as refused:
        claims.claim(actor=as_(bob), item=item)
    assert refused.value.field == "claimed_by"
    assert "alice holds the item" in refused.value.reason
    assert fresh(item).claimed_by == alice
    assert kinds(item) == [ReviewEventKind.CLAIMED]


def test_a_lapsed_claim_is_anyones_to_take(deployment, alice, bob):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    clock.advance(30 * 60)  # the lease ends exactly now
    claims.claim(actor=as_(bob), item=item)
    item = fresh(item)
    assert item.claimed_by == bob
    assert item.claim_expires_at == T0 + timedelta(minutes=60)
    assert kinds(item) == [
        ReviewEventKind.CLAIMED,
        ReviewEventKind.CLAIM_EXPIRED,
        ReviewEventKind.CLAIMED,
    ]
    expired = item.events.get(kind=ReviewEventKind.CLAIM_EXPIRED)
    assert expired.detail["claimed_by"] == "alice"
    assert expired.actor_label == "system:review-claims"


def test_a_decided_item_cannot_be_claimed(deployment, alice):
    item = queued_item_of(deployment, status=ReviewStatus.DECIDED, decision="confirm")
    with pytest.raises(Conflict) as refused:
        claims.claim(actor=as_(alice), item=item)
    assert refused.value.field == "status"
    assert kinds(item) == []


def test_an_appeal_goes_to_a_different_reviewer(deployment, alice, bob):
    item = queued_item_of(deployment, level=2, first_decided_by=alice)
    with pytest.raises(Forbidden) as refused:
        claims.claim(actor=as_(alice), item=item)
    assert refused.value.reason == (
        "an appeal goes to a different reviewer than the one who decided"
    )
    assert fresh(item).status == ReviewStatus.PENDING
    claims.claim(actor=as_(bob), item=item)
    assert fresh(item).claimed_by == bob


@pytest.mark.parametrize("who", ["owner", "outsider"])
def test_claiming_needs_the_reviewer_duty_in_the_items_team(deployment, people, who):
    item = queued_item_of(deployment)
    with pytest.raises(Forbidden):
        claims.claim(actor=as_(people[who]), item=item)
    assert fresh(item).status == ReviewStatus.PENDING


def test_a_token_never_claims(team, deployment):
    token, _ = make_token(team, ["write"])
    item = queued_item_of(deployment)
    with pytest.raises(Forbidden) as refused:
        claims.claim(actor=Actor.from_principal(TokenPrincipal(token)), item=item)
    assert "a person decides" in refused.value.reason


# release ----------------------------------------------------------------------------------------


def test_the_holder_releases_an_item_back_to_the_queue(deployment, alice):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    claims.release(actor=as_(alice), item=item, reason="needs a colleague who reads Finnish")
    item = fresh(item)
    assert item.status == ReviewStatus.PENDING
    assert (item.claimed_by, item.claimed_at, item.claim_expires_at) == (None, None, None)
    assert kinds(item) == [ReviewEventKind.CLAIMED, ReviewEventKind.RELEASED]
    assert item.events.last().detail == {"reason": "needs a colleague who reads Finnish"}
    assert AuditEvent.objects.filter(action="review.release").count() == 1


def test_only_the_holder_releases(deployment, alice, bob):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=item)
    with pytest.raises(Conflict) as refused:
        claims.release(actor=as_(bob), item=item)
    assert refused.value.field == "claimed_by"
    assert fresh(item).claimed_by == alice


def test_an_unclaimed_item_has_nothing_to_release(deployment, alice):
    item = queued_item_of(deployment)
    with pytest.raises(Conflict) as refused:
        claims.release(actor=as_(alice), item=item)
    assert refused.value.field == "status"
    assert kinds(item) == []


# expiry -----------------------------------------------------------------------------------------


def test_lapsed_claims_go_back_to_the_queue(team, deployment, alice, bob):
    short = review_deployment_of(
        team, name="fraud-flagger", policy={"all": True, "claim_minutes": 5}
    )
    lapsing = queued_item_of(short)
    lasting = queued_item_of(deployment)
    claims.claim(actor=as_(alice), item=lapsing)
    claims.claim(actor=as_(bob), item=lasting)
    clock.advance(4 * 60)
    assert claims.expire_claims() == 0
    clock.advance(60)
    assert claims.expire_claims() == 1
    lapsing, lasting = fresh(lapsing), fresh(lasting)
    assert lapsing.status == ReviewStatus.PENDING and lapsing.claimed_by is None
    assert kinds(lapsing)[-1] == ReviewEventKind.CLAIM_EXPIRED
    assert lasting.status == ReviewStatus.CLAIMED and lasting.claimed_by == bob
    assert claims.expire_claims() == 0  # nothing twice


def test_expiry_works_through_any_backlog_in_bounded_batches(deployment, alice, settings):
    settings.REVIEWS_CLAIM_EXPIRY_BATCH = 2
    items = [queued_item_of(deployment) for _ in range(5)]
    for item in items:
        claims.claim(actor=as_(alice), item=item)
    clock.advance(31 * 60)
    assert claims.expire_claims() == 5
    assert not ReviewItem.objects.filter(status=ReviewStatus.CLAIMED).exists()


# claim_next -------------------------------------------------------------------------------------


def test_claim_next_takes_the_earliest_deadline_first(deployment, alice):
    later = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=3))
    sooner = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=1))
    assert claims.claim_next(actor=as_(alice)) == sooner
    assert claims.claim_next(actor=as_(alice)) == later
    assert claims.claim_next(actor=as_(alice)) is None
    assert fresh(sooner).claimed_by == alice and fresh(later).claimed_by == alice


def test_claim_next_passes_over_what_the_reviewer_may_not_take(deployment, alice, bob):
    held = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=10))
    claims.claim(actor=as_(bob), item=held)
    own_appeal = queued_item_of(
        deployment, level=2, first_decided_by=alice, sla_deadline=T0 + timedelta(minutes=20)
    )
    decided = queued_item_of(
        deployment, status=ReviewStatus.DECIDED, sla_deadline=T0 + timedelta(minutes=30)
    )
    free = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=2))
    assert claims.claim_next(actor=as_(alice)) == free
    assert claims.claim_next(actor=as_(alice)) is None
    assert fresh(held).claimed_by == bob
    assert fresh(own_appeal).status == ReviewStatus.PENDING
    assert fresh(decided).status == ReviewStatus.DECIDED


def test_claim_next_takes_a_lapsed_claim(deployment, alice, bob):
    item = queued_item_of(deployment)
    claims.claim(actor=as_(bob), item=item)
    clock.advance(31 * 60)
    assert claims.claim_next(actor=as_(alice)) == item
    assert kinds(item)[-2:] == [ReviewEventKind.CLAIM_EXPIRED, ReviewEventKind.CLAIMED]


def test_claim_next_narrows_to_a_deployment_and_a_level(team, deployment, alice):
    other = review_deployment_of(team, name="fraud-flagger")
    first = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=5))
    appeal = queued_item_of(deployment, level=2, sla_deadline=T0 + timedelta(minutes=6))
    elsewhere = queued_item_of(other, sla_deadline=T0 + timedelta(minutes=1))
    assert claims.claim_next(actor=as_(alice), deployment=deployment, level=2) == appeal
    assert claims.claim_next(actor=as_(alice), deployment=deployment) == first
    assert claims.claim_next(actor=as_(alice), deployment=deployment) is None
    assert claims.claim_next(actor=as_(alice)) == elsewhere


def test_claim_next_never_reaches_into_another_team(other_team, deployment, alice):
    foreign = review_deployment_of(other_team, name="search-ranker")
    queued_item_of(foreign, sla_deadline=T0)
    assert claims.claim_next(actor=as_(alice)) is None
    with pytest.raises(Forbidden):
        claims.claim_next(actor=as_(alice), deployment=foreign)


def test_claim_next_refuses_a_member_without_the_duty_and_a_token(team, deployment, people):
    queued_item_of(deployment)
    with pytest.raises(Forbidden):
        claims.claim_next(actor=as_(people["owner"]))
    token, _ = make_token(team, ["write"])
    with pytest.raises(Forbidden) as refused:
        claims.claim_next(actor=Actor.from_principal(TokenPrincipal(token)))
    assert "a person decides" in refused.value.reason
    assert not ReviewItem.objects.filter(status=ReviewStatus.CLAIMED).exists()
