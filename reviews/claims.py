"""Claims on review items: a reviewer takes an item for a lease (the policy's `claim_minutes`),
gives it back, or lets the lease run out (`expire_claims`, run by Celery beat). Two reviewers
never hold the same item: every change happens under the item's row lock, and `claim_next`
picks with `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so N reviewers asking at once
each get a different item (or none) without waiting on each other.

Each change is one transaction, one history event and (for a person's change) one audit event.
It must never hand a level-2 item to the reviewer whose decision is appealed, and never write
the input summary anywhere."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from core import clock
from core.errors import Conflict
from deployments.models import Deployment
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require

from . import history, selectors
from .models import ReviewEventKind, ReviewItem, ReviewStatus

SYSTEM = Actor.system("review-claims")


def expiry_batch_size() -> int:
    """How many lapsed claims one transaction of `expire_claims` hands back (setting
    REVIEWS_CLAIM_EXPIRY_BATCH): short transactions, whatever the backlog."""
    return int(getattr(settings, "REVIEWS_CLAIM_EXPIRY_BATCH", 500))


def locked(item: ReviewItem) -> ReviewItem:
    """The item re-read under its row lock, with whoever holds or decided it (for messages)."""
    return (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("claimed_by")
        .get(pk=item.pk)
    )


def _lapse(item: ReviewItem, now: datetime, actor: Actor) -> None:
    """Record that the item's lease ran out (before anyone else takes it), and free it."""
    holder = item.claimed_by
    history.event(
        item,
        ReviewEventKind.CLAIM_EXPIRED,
        actor,
        {
            "claimed_by": holder.get_username() if holder is not None else None,
            "expired_at": item.claim_expires_at.isoformat() if item.claim_expires_at else None,
        },
    )
    item.status = ReviewStatus.PENDING
    item.claimed_by = None
    item.claimed_at = None
    item.claim_expires_at = None


def take(item: ReviewItem, actor: Actor, now: datetime) -> ReviewItem:
    """Give the (locked, takeable) item to the actor for one lease; a lapsed claim of someone
    else is recorded as expired first. Shared with `decisions.decide`, which claims an
    unclaimed item in the same transaction as it decides it. Saves the item."""
    user = actor.user
    renewed = item.claim_holder(now) is not None and item.claimed_by_id == user.pk
    if item.status == ReviewStatus.CLAIMED and not renewed:
        _lapse(item, now, SYSTEM)
    lease = timedelta(minutes=selectors.policy_for(item).claim_minutes)
    item.status = ReviewStatus.CLAIMED
    item.claimed_by = user
    if not renewed or item.claimed_at is None:
        item.claimed_at = now
    item.claim_expires_at = now + lease
    item.save()
    history.event(
        item,
        ReviewEventKind.CLAIMED,
        actor,
        {"until": item.claim_expires_at.isoformat(), "renewed": renewed},
    )
    return item


def _check_person(actor: Actor) -> None:
    """Claims belong to people: a lease needs someone to hold it. Tokens are refused earlier
    (REVIEW_DECIDE is human-only); this guards the system actor."""
    if actor.user is None:
        raise Conflict("only a person claims review items", field="actor")


def claim(*, actor: Actor, item: ReviewItem) -> ReviewItem:
    """Take this item for one lease; claiming an item one already holds renews the lease.
    Refused for a decided item, an item someone else holds, and (403) an appeal of one's own
    decision."""
    require(actor.principal, Action.REVIEW_DECIDE, item)
    _check_person(actor)
    now = clock.now()
    with transaction.atomic():
        item = locked(item)
        refusal = selectors.take_refusal(item, actor.user, now)
        if refusal is not None:
            raise refusal
        _claimed(item, actor, now)
    return item


def _claimed(item: ReviewItem, actor: Actor, now: datetime) -> None:
    """Take the (locked) item for the actor and audit it: the end of both ways to claim."""
    take(item, actor, now)
    audit.record(
        actor=actor,
        action="review.claim",
        target=item,
        after={"claim_expires_at": item.claim_expires_at.isoformat(), "level": item.level},
    )


def claim_next(
    *, actor: Actor, deployment: Deployment | None = None, level: int | None = None
) -> ReviewItem | None:
    """Take the item with the earliest SLA deadline among those the actor may take (in the
    teams where they decide, optionally one deployment or level), or None when none waits.
    Items another claimer has locked this instant are skipped, not waited for: concurrent
    claimers each get a different item."""
    principal = actor.principal
    if deployment is not None:
        require(principal, Action.REVIEW_DECIDE, deployment)
    teams = selectors.reviewer_team_ids(principal, Action.REVIEW_DECIDE)
    _check_person(actor)
    now = clock.now()
    candidates = ReviewItem.objects.filter(selectors.takeable(actor.user.pk, now)).exclude(
        status=ReviewStatus.CLAIMED, claimed_by_id=actor.user.pk, claim_expires_at__gt=now
    )
    if teams is not None:
        candidates = candidates.filter(team_id__in=teams)
    if deployment is not None:
        candidates = candidates.filter(deployment=deployment)
    if level is not None:
        candidates = candidates.filter(level=level)
    # SQLite has no row locks (it serialises writers instead): a plain select is enough there.
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        item = (
            candidates.select_for_update(skip_locked=skip_locked, of=("self",))
            .select_related("claimed_by")
            .order_by("sla_deadline", "id")
            .first()
        )
        if item is None:
            return None
        _claimed(item, actor, now)
    return item


def release(*, actor: Actor, item: ReviewItem, reason: str = "") -> ReviewItem:
    """Give a claimed item back to the queue before deciding it. Only its holder releases it
    (a lapsed lease of one's own included); anyone else waits for the lease to run out."""
    require(actor.principal, Action.REVIEW_DECIDE, item)
    _check_person(actor)
    with transaction.atomic():
        item = locked(item)
        if item.status != ReviewStatus.CLAIMED:
            raise Conflict(
                f"the item is {item.status}: there is no claim to release", field="status"
            )
        if item.claimed_by_id != actor.user.pk:
            holder = item.claimed_by.get_username() if item.claimed_by else "someone else"
            raise Conflict(
                f"{holder} holds the claim: only its holder releases it", field="claimed_by"
            )
        item.status = ReviewStatus.PENDING
        item.claimed_by = None
        item.claimed_at = None
        item.claim_expires_at = None
        item.save()
        history.event(
            item, ReviewEventKind.RELEASED, actor, {"reason": reason[:500]} if reason else {}
        )
        audit.record(actor=actor, action="review.release", target=item, reason=reason[:500])
    return item


def expire_claims() -> int:
    """Hand every claim whose lease has run out back to the queue (CLAIM_EXPIRED in its
    history), in bounded transactions; rows a reviewer is deciding this instant are skipped
    and caught by the next run. Returns how many claims expired."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    expired = 0
    while True:
        now = clock.now()
        with transaction.atomic():
            batch = list(
                ReviewItem.objects.filter(status=ReviewStatus.CLAIMED, claim_expires_at__lte=now)
                .select_for_update(skip_locked=skip_locked, of=("self",))
                .select_related("claimed_by")
                .order_by("claim_expires_at", "id")[: expiry_batch_size()]
            )
            for item in batch:
                _lapse(item, now, SYSTEM)
                item.save()
        expired += len(batch)
        if len(batch) < expiry_batch_size():
            return expired
