"""The one place a release changes state: `transition` checks the one table of allowed
transitions (models.RELEASE_TRANSITIONS) and records the step and the audit event;
`record_step` records an action that keeps the state. Never touches the runtime and never
decides who may act (services.py does)."""

from __future__ import annotations

from typing import Any

from core import clock
from core.errors import Conflict
from identity import audit
from identity.audit import Actor

from ..models import RELEASE_TRANSITIONS, TERMINAL_STATES, Release, ReleaseStep

ENGINE = Actor.system("release-engine")


def transition(
    release: Release,
    to_state: str,
    *,
    actor: Actor,
    kind: str,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    outcome: str = "",
) -> ReleaseStep:
    """Move a release to another state, if the table allows it; record the step and audit."""
    from_state = release.state
    if to_state not in RELEASE_TRANSITIONS[from_state]:
        raise Conflict(f"a release that is {from_state} cannot become {to_state}", field="state")
    release.state = to_state
    release.status_reason = reason
    if to_state in TERMINAL_STATES:
        release.finished_at = clock.now()
        release.next_reconcile_at = None
    release.save()
    step = ReleaseStep.objects.create(
        release=release,
        kind=kind,
        plan_index=release.step_index,
        from_state=from_state,
        to_state=to_state,
        outcome=outcome,
        actor_label=actor.label,
        reason=reason,
        evidence=evidence or {},
    )
    audit.record(
        actor=actor,
        action=f"release.{kind}",
        target=release,
        before={"state": from_state},
        after={"state": to_state},
        reason=reason,
    )
    return step


def record_step(
    release: Release,
    kind: str,
    *,
    outcome: str,
    actor: Actor = ENGINE,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
) -> ReleaseStep:
    return ReleaseStep.objects.create(
        release=release,
        kind=kind,
        plan_index=release.step_index,
        from_state=release.state,
        to_state=release.state,
        outcome=outcome,
        actor_label=actor.label,
        reason=reason,
        evidence=evidence or {},
    )
