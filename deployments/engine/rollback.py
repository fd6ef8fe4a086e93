"""Rollback: all traffic back to a version that was promoted and healthy, then the rest scaled
down. The fastest path in the system: it never asks the metrics source, and never scales a
version down before the data plane serves the target alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from core import clock
from identity import audit
from identity.audit import Actor

from ..models import Deployment, Release, ReleaseState, Rollback, RollbackState
from ..runtime.base import DeploymentRef, Readiness, Runtime, Track, TrafficSplit
from .binding import can_serve, deployment_ref, runtime_of, version_spec
from .locking import lock_row
from .plan import progress_deadline
from .scheduling import POLL_SECONDS, schedule_reconcile, schedule_rollback
from .transitions import ENGINE, transition


def start_rollback(
    release: Release,
    *,
    actor: Actor,
    reason: str,
    evidence: dict[str, Any] | None = None,
    automatic: bool = False,
    aborting: bool = False,
) -> Rollback | None:
    """Turn an active release around: all traffic back to the stable version it started from.
    The Rollback row carries the work; the release waits in rolling_back until it is done, and
    then ends aborted when `aborting` (a person aborted it), else rolled back."""
    target = release.from_version
    if aborting:
        release.aborting = True
    if target is None:
        # Nothing served before: withdrawing the new version is the whole rollback.
        transition(
            release,
            ReleaseState.ABORTED if aborting else ReleaseState.FAILED,
            actor=actor,
            kind="abort" if aborting else "fail",
            reason=reason,
            evidence=evidence,
        )
        runtime_of(release.deployment).scale_version(
            deployment_ref(release.deployment), release.version.number, 0
        )
        return None
    rollback = Rollback.objects.create(
        deployment=release.deployment,
        release=release,
        from_version=release.version,
        to_version=target,
        actor_label=actor.label,
        reason=reason,
        automatic=automatic,
        evidence={"trigger": evidence or {}},
    )
    transition(
        release,
        ReleaseState.ROLLING_BACK,
        actor=actor,
        kind="abort" if aborting else "rollback",
        reason=reason,
        evidence={"rollback_id": rollback.pk, "to_version": target.number, **(evidence or {})},
        outcome="fail" if automatic else "",
    )
    schedule_rollback(rollback.pk)
    return rollback


def advance_rolling_back(release: Release) -> float | None:
    """The release's side of its rollback: wait for it, then end the release."""
    rollback = release.rollbacks.order_by("-id").first()
    if rollback is None:
        # Crash between states: the release says rolling back but no rollback was recorded.
        rollback = Rollback.objects.create(
            deployment=release.deployment,
            release=release,
            from_version=release.version,
            to_version=release.from_version,
            actor_label=ENGINE.label,
            reason="resumed an interrupted rollback",
        )
    if rollback.state == RollbackState.FAILED:
        rollback = _retry(release, rollback)
        if rollback is None:
            return None
    if rollback.state == RollbackState.PENDING:
        delay = _rollback_step(rollback)
        if isinstance(delay, SwitchPending):
            return SWITCH_RECHECK_SECONDS
        if delay is not None:
            return delay
    if rollback.state == RollbackState.DONE:
        aborting = release.aborting
        release.traffic = {"weights": {str(rollback.to_version.number): 100}, "mirror": None}
        transition(
            release,
            ReleaseState.ABORTED if aborting else ReleaseState.ROLLED_BACK,
            actor=ENGINE,
            kind="aborted" if aborting else "rolled_back",
            outcome="ok",
            reason=f"traffic back on v{rollback.to_version.number}",
            evidence={"rollback_id": rollback.pk, **rollback.evidence, "aborting": aborting},
        )
        return None
    return POLL_SECONDS


def rollback_attempts() -> int:
    return max(1, int(getattr(settings, "RELEASE_ROLLBACK_ATTEMPTS", 3)))


def _retry(release: Release, failed: Rollback) -> Rollback | None:
    """A release's rollback failed (its target never got ready, or the switch never reached the
    data plane before the deadline, as on a starved host): try again from the start, since the
    world may have caught up, up to RELEASE_ROLLBACK_ATTEMPTS in all. After the last, the release
    fails, so it stops waiting and its failure alerts a person (alerts' release_failed rule);
    returns None then."""
    attempts = release.rollbacks.count()
    error = failed.evidence.get("error", "")
    if attempts >= rollback_attempts():
        transition(
            release,
            ReleaseState.FAILED,
            actor=ENGINE,
            kind="fail",
            reason=(
                f"the rollback to v{failed.to_version.number} failed {attempts} times "
                f"(last: {error}); traffic may still reach v{failed.from_version.number}: "
                "roll back by hand"
            ),
            evidence={"rollback_id": failed.pk, "attempts": attempts, "error": error},
            outcome="fail",
        )
        return None
    return Rollback.objects.create(
        deployment=failed.deployment,
        release=release,
        from_version=failed.from_version,
        to_version=failed.to_version,
        actor_label=ENGINE.label,
        reason=failed.reason,
        automatic=failed.automatic,
        evidence={
            **{k: v for k, v in failed.evidence.items() if k != "error"},
            "retry_of": failed.pk,
            "previous_error": error,
            "attempt": attempts + 1,
        },
    )


@dataclass(frozen=True)
class SwitchPending:
    """The step's outcome when the switch is written to the runtime but the data plane does not
    serve it yet: what to look at while no lock is held."""

    runtime: Runtime
    ref: DeploymentRef
    split: TrafficSplit


SWITCH_RECHECK_SECONDS = 0.5  # the countdown when the data plane has not switched yet


def rollback_reconcile(rollback_id: int) -> float | None:
    """Drive one rollback: the fastest path in the system, and it needs no metrics. Once the
    switch is written, it waits a short while for the data plane to serve it, with no lock or
    transaction held (on SQLite a transaction holds the database's write lock), then finishes
    under the lock again; the countdown and another broker round trip are only the fallback."""
    step = _locked_step(rollback_id)
    if isinstance(step, SwitchPending) and _await_switch(step):
        step = _locked_step(rollback_id)
    return SWITCH_RECHECK_SECONDS if isinstance(step, SwitchPending) else step


def _locked_step(rollback_id: int) -> float | SwitchPending | None:
    with transaction.atomic():
        try:
            rollback = lock_row(
                Rollback.objects.select_related(
                    "deployment__environment", "deployment__model", "to_version", "release"
                ),
                rollback_id,
            )
        except (Rollback.DoesNotExist, DatabaseError):
            return None
        if rollback.state != RollbackState.PENDING:
            return None
        return _rollback_step(rollback)


def _rollback_step(rollback: Rollback) -> float | SwitchPending | None:
    deployment = rollback.deployment
    runtime = runtime_of(deployment)
    ref = deployment_ref(deployment)
    target = rollback.to_version.number
    # Every wait of a rollback (the target coming back up, the switch reaching the data plane)
    # ends at the deployment's progress deadline, counted from when the rollback was asked for.
    deadline = progress_deadline(deployment.effective_strategy_params)
    age = (clock.now() - rollback.created_at).total_seconds()
    status = runtime.version_status(ref, target)
    if not can_serve(status):
        if status.readiness is Readiness.FAILED:
            return _fail(rollback, status.message or "not ready")
        if age > deadline:
            error = f"v{target} was not ready within the progress deadline of {deadline}s"
            return _fail(rollback, f"{error}: {status.message}" if status.message else error)
        # The old version was scaled down (kept warm no longer): bring it back, then switch.
        config = deployment.config
        runtime.apply_version(
            ref, version_spec(deployment, config, rollback.to_version, None), Track.STABLE
        )
        return POLL_SECONDS
    split = TrafficSplit.all_to(target)
    runtime.set_traffic(ref, split)
    if not runtime.traffic_applied(ref, split):
        # Never scale the others down before the data plane serves the target alone.
        if age > deadline:
            return _fail(
                rollback,
                f"the switch to v{target} never reached the data plane within the progress "
                f"deadline of {deadline}s",
            )
        return SwitchPending(runtime, ref, split)
    for number in runtime.list_versions(ref):
        if number != target:
            runtime.scale_version(ref, number, 0)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.stable_version_id != rollback.to_version_id:
        deployment.stable_version = rollback.to_version
        deployment.previous_stable_version = None
        deployment.promoted_at = clock.now()
        deployment.save()
    rollback.state = RollbackState.DONE
    rollback.completed_at = clock.now()
    rollback.evidence = {**rollback.evidence, "traffic": {str(target): 100}}
    rollback.save()
    audit.record(
        actor=ENGINE,
        action="deployment.rolled_back",
        target=deployment,
        after={"stable_version": target},
        reason=rollback.reason,
    )
    if rollback.release_id and rollback.release.state == ReleaseState.ROLLING_BACK:
        schedule_reconcile(rollback.release_id)
    return None


def switch_wait_seconds() -> float:
    return max(0.0, float(settings.RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS))


def _await_switch(pending: SwitchPending) -> bool:
    """Whether the data plane serves the split within RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS,
    looking again at growing intervals (the local supervisor, woken by the runtime, pushes the
    table to its router within milliseconds; a Gateway controller usually within a second).
    Called with no lock held: it only reads."""
    deadline = time.monotonic() + switch_wait_seconds()
    pause = 0.005
    while True:
        if pending.runtime.traffic_applied(pending.ref, pending.split):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.1)


def _fail(rollback: Rollback, error: str) -> None:
    rollback.state = RollbackState.FAILED
    rollback.completed_at = clock.now()
    rollback.evidence = {**rollback.evidence, "error": error}
    rollback.save()
    audit.record(
        actor=ENGINE,
        action="deployment.rollback_failed",
        target=rollback.deployment,
        reason=error,
    )
    return None
