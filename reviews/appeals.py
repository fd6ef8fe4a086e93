"""Appeals: the subject of a decision, through the service that relays them, asks for a second
look. A decided level-1 item reopens at level 2 under a new SLA, and whoever decided level 1 can
never take it (selectors.take_refusal); the level-2 decision is final.

The level-1 decision is kept on the Appeal row and in the history. The statement is the
subject's words: it is stored on the Appeal only, never in the history, the audit log or a log."""

from __future__ import annotations

from django.db import transaction

from core import clock
from core.errors import Conflict, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require

from . import history, selectors, sla
from .models import Appeal, ReviewEventKind, ReviewItem, ReviewStatus

MAX_STATEMENT = 4000


def refusal(item: ReviewItem) -> str | None:
    """Why the item cannot be appealed now, or None when it can: only a decided level-1 item
    without an appeal. Load `appeal` with the item (select_related) to spare a query."""
    if item.level != 1 or _has_appeal(item):
        return "the item was already appealed, and the decision of an appeal is final"
    if item.status != ReviewStatus.DECIDED:
        return "the item is not decided yet: only a decision can be appealed"
    return None


def _has_appeal(item: ReviewItem) -> bool:
    try:
        item.appeal  # noqa: B018 (the reverse one-to-one raises when there is none)
    except Appeal.DoesNotExist:
        return False
    return True


def check_statement(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"must be a string, not {type(value).__name__}", field="statement")
    statement = value.strip()
    if not statement:
        raise ValidationFailed("cannot be empty", field="statement")
    if len(statement) > MAX_STATEMENT:
        raise ValidationFailed(f"at most {MAX_STATEMENT} characters", field="statement")
    return statement


@transaction.atomic
def appeal(*, actor: Actor, item: ReviewItem, statement: str) -> Appeal:
    """Reopen a decided level-1 item as a level-2 review: pending, unclaimed, its SLA counted
    again from now under the policy that selected it. The decision fields are emptied (the
    outcome reads "pending" with no output until level 2 decides) after the level-1 decision
    is copied to the Appeal. Two appeals racing: the row lock lets one through, the other gets
    a conflict."""
    require(actor.principal, Action.REVIEW_APPEAL, item)
    statement = check_statement(statement)
    item = (
        ReviewItem.objects.select_for_update(of=("self",))
        .select_related("appeal", "decided_by")
        .get(pk=item.pk)
    )
    reason = refusal(item)
    if reason is not None:
        raise Conflict(reason, field="ref")

    now = clock.now()
    filed = Appeal.objects.create(
        item=item,
        statement=statement,
        submitted_by_label=actor.label,
        appealed_decision=item.decision,
        appealed_output=item.final_output,
        created_at=now,
    )
    before = audit.snapshot(item, ("level", "status", "decision", "decided_by", "sla_deadline"))
    # The four-eyes rule of level 2 reads first_decided_by: never leave it empty.
    if item.first_decided_by_id is None:
        item.first_decided_by_id = item.decided_by_id
    item.level = 2
    item.status = ReviewStatus.PENDING
    item.claimed_by = None
    item.claimed_at = None
    item.claim_expires_at = None
    item.sla_deadline = sla.deadline(now, selectors.policy_for(item))
    item.sla_breached_at = None
    item.decision = ""
    item.final_output = None
    item.decision_reason = ""
    item.decided_by = None
    item.decided_at = None
    item.save()
    history.event(
        item,
        ReviewEventKind.APPEALED,
        actor,
        {
            "appealed_decision": filed.appealed_decision,
            "sla_deadline": item.sla_deadline.isoformat(),
        },
    )
    audit.record(
        actor=actor,
        action="review.appeal",
        target=item,
        before=before,
        after=audit.snapshot(item, ("level", "status", "decision", "decided_by", "sla_deadline")),
        team_id=item.team_id,
    )
    return filed
