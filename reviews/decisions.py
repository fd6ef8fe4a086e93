"""A reviewer's decision on an item: confirm the model's prediction or override it with a
corrected output, always with a reason. A level-1 decision can be appealed (reviews/appeals.py);
a level-2 decision is final. Deciding is one transaction (claiming an unclaimed item on the way),
one history event, one audit event, and the outcome's callback recorded with it (sent after
commit).

It must never let the reviewer whose decision is appealed decide the appeal, never decide over
someone else's live claim, and never put the input summary in history, audit or logs."""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from core import clock
from core.errors import Conflict, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require

from . import claims, history, selectors
from .callbacks import enqueue
from .models import Decision, ReviewEventKind, ReviewItem, ReviewStatus

MAX_REASON_LENGTH = 2000
# A corrected output is one prediction, not a payload: JSON text of at most this many bytes.
MAX_OUTPUT_BYTES = 16 * 1024


def check_decision(value: Any) -> Decision:
    if value not in Decision.values:
        raise ValidationFailed(f"must be one of {', '.join(Decision.values)}", field="decision")
    return Decision(value)


def check_reason(value: Any) -> str:
    """Why the reviewer decided so: required, so an override can be understood by whoever
    reads the history or handles the appeal."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("say why you decide so", field="reason")
    reason = value.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise ValidationFailed(f"at most {MAX_REASON_LENGTH} characters", field="reason")
    return reason


def check_output(decision: Decision, output: Any, prediction: Any) -> dict[str, Any] | None:
    """The corrected output of an override: a non-empty JSON object (the shape of a prediction,
    e.g. {"label": "approved"}) of bounded size, and different from the prediction (else it is
    a confirmation). A confirmation carries none."""
    if decision == Decision.CONFIRM:
        if output is not None:
            raise ValidationFailed(
                "only an override carries a corrected output: a confirmation keeps the prediction",
                field="output",
            )
        return None
    if output is None:
        raise ValidationFailed("an override needs the corrected output", field="output")
    if not isinstance(output, dict) or not output:
        raise ValidationFailed(
            'must be a non-empty JSON object, e.g. {"label": "approved"}', field="output"
        )
    try:
        text = json.dumps(output, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValidationFailed("must be plain JSON (no NaN or infinity)", field="output") from None
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise ValidationFailed(
            f"at most {MAX_OUTPUT_BYTES} bytes of JSON: it is one corrected prediction",
            field="output",
        )
    same_label = (
        isinstance(prediction, dict)
        and "label" in prediction
        and "label" in output
        and output["label"] == prediction["label"]
    )
    if output == prediction or same_label:
        raise ValidationFailed(
            "is the model's prediction: confirm it instead of overriding", field="output"
        )
    return output


def decide(
    *,
    actor: Actor,
    item: ReviewItem,
    decision: Any,
    reason: Any,
    corrected_output: Any = None,
) -> ReviewItem:
    """Confirm or override the item; the decision of a level-2 item is final. An unclaimed item
    (or one whose lease ran out) is claimed in the same transaction; an item someone else holds
    is theirs to decide (409); an appeal of one's own decision is refused (403). Every input is
    checked before anything is written."""
    require(actor.principal, Action.REVIEW_DECIDE, item)
    decision = check_decision(decision)
    reason = check_reason(reason)
    if actor.user is None:
        raise Conflict("only a person decides review items", field="actor")
    now = clock.now()
    with transaction.atomic():
        item = claims.locked(item)
        refusal = selectors.take_refusal(item, actor.user, now)
        if refusal is not None:
            raise refusal
        output = check_output(decision, corrected_output, item.prediction)
        if item.claim_holder(now) is None:
            claims.take(item, actor, now)
        item.decision = decision
        item.final_output = item.prediction if decision == Decision.CONFIRM else output
        item.decision_reason = reason
        item.decided_by = actor.user
        item.decided_at = now
        if item.level == 1:
            item.first_decided_by = actor.user
        item.status = ReviewStatus.DECIDED
        # A decided item holds no claim: the history says who held it.
        item.claimed_by = None
        item.claimed_at = None
        item.claim_expires_at = None
        item.save()
        history.event(
            item,
            ReviewEventKind.DECIDED,
            actor,
            {"decision": decision.value, "level": item.level, "reason": reason},
        )
        audit.record(
            actor=actor,
            action="review.decide",
            target=item,
            after={"decision": decision.value, "level": item.level, "status": item.status},
            reason=reason,
        )
        # The delivery row is written with the decision; its message leaves after commit.
        enqueue(item)
    return item
