"""The one way an item's history grows: an event with who or what did it, when (the engine's
clock) and the decision's details. Shared by submission, claims, decisions, appeals, SLA checks,
retention and callbacks, which must not import each other in a circle. `detail` must never carry
the input summary: history is shown to everyone who may see the item, and kept after retention."""

from __future__ import annotations

from typing import Any

from core import clock
from identity.audit import Actor

from .models import ReviewEvent, ReviewItem


def event(
    item: ReviewItem, kind: str, actor: Actor, detail: dict[str, Any] | None = None
) -> ReviewEvent:
    return ReviewEvent.objects.create(
        item=item,
        kind=kind,
        level=item.level,
        actor=actor.user,
        actor_label=actor.label,
        detail=detail or {},
        created_at=clock.now(),
    )
