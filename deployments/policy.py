"""Rules about releases and rollbacks that both the services (which enforce them) and the
selectors (which decide what the pages offer) consult. Reads only; never writes."""

from __future__ import annotations

from dataclasses import dataclass

from registry.models import ModelVersion

from .engine import StepAction, StepTarget, current_step, steps_of
from .models import (
    ACTIVE_STATES,
    RUNNING_STATES,
    Deployment,
    Release,
    ReleaseState,
    RollbackState,
)


def in_production(release: Release) -> bool:
    """The release is rolling out in production, or paused there. A release rolling back is
    not: it is going back, and only its rollback acts on it."""
    state = release.paused_from if release.state == ReleaseState.PAUSED else release.state
    return state == ReleaseState.PROGRESSING


def is_aborting(release: Release) -> bool:
    """A person aborted the release and its rollback is under way."""
    return release.state == ReleaseState.ROLLING_BACK and release.aborting


def allowed_actions(release: Release) -> set[str]:
    """Which release actions its state allows (who may take them is permissions.py's call)."""
    if release.is_terminal:
        return set()
    allowed: set[str] = set()
    if release.state == ReleaseState.AWAITING_APPROVAL:
        allowed |= {"approve", "reject"}
    step = current_step(release)
    if in_production(release) and step is not None and step.action == StepAction.ANALYZE:
        allowed.add("promote")
    if release.state in RUNNING_STATES:
        allowed.add("pause")
    if release.state == ReleaseState.PAUSED:
        allowed.add("resume")
    if not is_aborting(release):
        allowed.add("abort")
    return allowed


def touched_production(release: Release) -> bool:
    """Has this release moved production traffic yet?"""
    indexes = release.steps.filter(kind="traffic", plan_index__isnull=False).values_list(
        "plan_index", flat=True
    )
    plan = steps_of(release)
    return any(0 <= i < len(plan) and plan[i].target == StepTarget.TARGET for i in indexes)


@dataclass(frozen=True)
class RollbackTarget:
    version: ModelVersion | None  # None: there is nothing to go back to
    active_release: Release | None
    turn_around: bool  # the active release is turned around (vs aborted + deployment rollback)
    pending_rollback_id: int | None = None


def rollback_target(deployment: Deployment) -> RollbackTarget:
    """Where a press of the rollback button sends all traffic: a rollback already under way keeps
    its target; an active release that already moved production traffic goes back to where it
    started; otherwise the version that was stable before the current one."""
    active = (
        deployment.releases.filter(state__in=_active_states())
        .select_related("from_version")
        .first()
    )
    if active is not None:
        pending = (
            active.rollbacks.filter(state=RollbackState.PENDING)
            .select_related("to_version")
            .order_by("-id")
            .first()
        )
        if active.state == ReleaseState.ROLLING_BACK and pending is not None:
            return RollbackTarget(pending.to_version, active, True, pending.pk)
        if active.from_version_id and touched_production(active):
            return RollbackTarget(active.from_version, active, True)
    return RollbackTarget(deployment.previous_stable_version, active, False)


def _active_states() -> list[str]:
    return sorted(ACTIVE_STATES)
