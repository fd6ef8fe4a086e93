"""The one way an alert's timeline grows: an event with who or what did it, when (the engine's
clock) and why. Shared by the lifecycle, escalation and notifications, which must not import
each other in a circle; it never changes the alert itself."""

from __future__ import annotations

from typing import Any

from core import clock
from identity.audit import Actor

from .models import Alert, AlertEvent


def event(
    alert: Alert, kind: str, actor: Actor, text: str = "", data: dict[str, Any] | None = None
) -> AlertEvent:
    return AlertEvent.objects.create(
        alert=alert,
        kind=kind,
        at=clock.now(),
        actor_label=actor.label,
        actor=actor.user,
        text=text,
        data=data or {},
    )
