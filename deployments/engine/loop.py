"""The reconcile loop: `reconcile(release_id)` locks the release, takes at most its next step and
says when to look again. The plan position only moves after the step's side effect succeeded.
Never decides who may act (services.py does) and never enqueues work before its transaction
commits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, transaction

from core import clock
from identity.audit import Actor
from identity.models import Role
from registry.models import ModelVersion

from ..models import WAITING_FOR_A_PERSON, Deployment, Release, ReleaseState
from ..runtime.base import PermanentRuntimeError, TrafficSplit
from .binding import can_serve, deployment_ref, runtime_of
from .locking import lock_row
from .plan import (
    PHASE_STATE,
    PlanStep,
    PromoteStep,
    StepAction,
    StepPhase,
    StepTarget,
    current_step,
    steps_of,
)
from .rollback import advance_rolling_back, start_rollback
from .steps import OutcomeKind, StepContext, fail, take_step
from .transitions import ENGINE, record_step, transition


def reconcile(release_id: int, *, force: bool = False) -> float | None:
    """Take at most the next step of a release. Returns the seconds until it should be looked at
    again, or None when nothing is due (finished, waiting for a person, or not due yet)."""
    with transaction.atomic():
        try:
            release = lock_row(
                Release.objects.select_related(
                    "deployment__environment__staging",
                    "deployment__model__team",
                    "version",
                    "from_version",
                    "config",
                ),
                release_id,
            )
        except Release.DoesNotExist:
            return None
        except DatabaseError:
            return None  # another worker holds the release
        now = clock.now()
        if release.is_terminal:
            return None
        if not force and release.next_reconcile_at and release.next_reconcile_at > now:
            return None  # not due: the task that is due will come (or the sweep will)
        release.reconcile_count += 1
        delay = _advance(release)
        release.next_reconcile_at = (
            now + timedelta(seconds=delay)
            if delay is not None and not release.is_terminal
            else None
        )
        release.save()
        return delay if not release.is_terminal else None


def _advance(release: Release) -> float | None:
    state = release.state
    if state in WAITING_FOR_A_PERSON:
        return None  # a person acts next
    if state == ReleaseState.APPROVED:
        first = current_step(release)
        target = PHASE_STATE[first.phase] if first else ReleaseState.PROGRESSING
        transition(release, target, actor=ENGINE, kind="start", reason="approved: starting")
        release.step_started_at = clock.now()
        return 0.0
    if state == ReleaseState.ROLLING_BACK:
        return advance_rolling_back(release)
    return _advance_plan(release)


def _advance_plan(release: Release) -> float | None:
    step = current_step(release)
    if step is None:
        transition(
            release,
            ReleaseState.PROMOTED,
            actor=ENGINE,
            kind="promoted",
            outcome="ok",
            reason=f"v{release.version.number} serves all traffic",
        )
        return None
    phase_state = PHASE_STATE[step.phase]
    if release.state != phase_state:
        transition(
            release,
            phase_state,
            actor=ENGINE,
            kind=f"enter_{step.phase}",
            reason=f"{step.phase} phase",
        )
        release.step_started_at = clock.now()
    deployment = _target_deployment(release, step)
    ctx = StepContext(release, deployment, runtime_of(deployment), deployment_ref(deployment))
    try:
        outcome = take_step(ctx, step)
    except PermanentRuntimeError as exc:
        outcome = fail(f"the runtime refused {step.action}: {exc}")
    # TransientRuntimeError propagates: the task retries with backoff, the transaction rolls
    # back, and the step is taken again (it is idempotent).
    if outcome.kind == OutcomeKind.DONE:
        if step.action != StepAction.ANALYZE:  # the analysis already recorded its own step
            record_step(release, step.action, outcome="ok", evidence=outcome.evidence)
        release.step_index += 1
        release.step_started_at = clock.now()
        return 0.0
    if outcome.kind == OutcomeKind.WAIT:
        return outcome.delay
    if outcome.kind == OutcomeKind.PAUSE:
        _pause(release, ENGINE, outcome.reason, outcome.evidence, notify=True)
        return None
    if outcome.kind == OutcomeKind.ROLLBACK:
        start_rollback(
            release, actor=ENGINE, reason=outcome.reason, evidence=outcome.evidence, automatic=True
        )
        return 0.0
    # fail
    record_step(
        release, step.action, outcome="fail", reason=outcome.reason, evidence=outcome.evidence
    )
    if step.phase == StepPhase.PRODUCTION and release.from_version_id:
        start_rollback(
            release, actor=ENGINE, reason=outcome.reason, evidence=outcome.evidence, automatic=True
        )
        return 0.0
    restore_staging(release)
    transition(
        release,
        ReleaseState.FAILED,
        actor=ENGINE,
        kind="fail",
        outcome="fail",
        reason=outcome.reason,
        evidence=outcome.evidence,
    )
    return None


def _target_deployment(release: Release, step: PlanStep) -> Deployment:
    if step.target == StepTarget.STAGING:
        return Deployment.objects.select_related("environment", "model", "config").get(
            environment=release.deployment.environment.staging, model=release.deployment.model
        )
    return release.deployment


def restore_staging(release: Release) -> None:
    """A release that fails (or is aborted) at a staging step leaves staging serving what it
    served before."""
    step = current_step(release)
    if step is None or step.target != StepTarget.STAGING:
        return
    staging = _target_deployment(release, step)
    if staging.stable_version_id is None or staging.stable_version_id == release.version_id:
        staging_prev = next(
            (
                s.previous
                for s in steps_of(release)
                if isinstance(s, PromoteStep) and s.target == StepTarget.STAGING
            ),
            None,
        )
        if staging_prev is None:
            return
        number = staging_prev
        Deployment.objects.filter(pk=staging.pk).update(
            stable_version=ModelVersion.objects.get(
                model_id=release.version.model_id, number=number
            )
        )
    else:
        number = staging.stable_version.number
    runtime = runtime_of(staging)
    ref = deployment_ref(staging)
    if can_serve(runtime.version_status(ref, number)):
        runtime.set_traffic(ref, TrafficSplit.all_to(number))
        runtime.scale_version(ref, release.version.number, 0)


def _pause(
    release: Release, actor: Actor, reason: str, evidence: dict[str, Any], *, notify: bool
) -> None:
    release.paused_from = release.state
    transition(
        release,
        ReleaseState.PAUSED,
        actor=actor,
        kind="pause",
        outcome="inconclusive" if notify else "",
        reason=reason,
        evidence=evidence,
    )
    if notify and not release.inconclusive_notified:
        # Owners hear about an inconclusive analysis once per release, not at every interval.
        release.inconclusive_notified = True
        notify_owners(release, f"Release #{release.pk} paused: {reason}")


def notify_owners(release: Release, message: str) -> None:
    team = release.deployment.model.team
    emails = list(
        team.memberships.filter(role=Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    record_step(
        release,
        "notify",
        outcome="sent",
        reason=message,
        evidence={"recipients": len(emails), "team": team.slug},
    )
    if emails:
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[modelplane] {release.deployment.model.name}: {message}"[:200],
                message=f"{message}\n\nRelease: {settings.PORTAL_URL}/releases/{release.pk}/",
                from_email=None,
                recipient_list=emails,
                fail_silently=True,
            )
        )
