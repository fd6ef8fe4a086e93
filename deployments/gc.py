"""Cleaning up after releases: the previous stable version stays warm (full size) for
`keep_warm_seconds` after a promotion so that a rollback is an instant traffic shift; then it is
scaled to zero (its objects stay, so a later rollback only waits for a scale-up). Versions that
are neither stable nor previous are removed once that delay has passed. Never touches a
deployment with an active release or a pending rollback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, transaction

from core import clock
from identity import audit

from . import engine
from .models import ACTIVE_STATES, Deployment, RollbackState

DEFAULT_KEEP_WARM_SECONDS = 900


@dataclass
class Collected:
    scaled_down: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


def collect(deployment_id: int) -> Collected:
    result = Collected()
    with transaction.atomic():
        try:
            deployment = engine.lock_row(
                Deployment.objects.select_related(
                    "environment", "model", "stable_version", "previous_stable_version"
                ),
                deployment_id,
            )
        except (Deployment.DoesNotExist, DatabaseError):
            return result  # gone, or someone is acting on it right now
        if deployment.promoted_at is None or deployment.stable_version_id is None:
            return result
        if deployment.releases.filter(state__in=ACTIVE_STATES).exists():
            return result
        if deployment.rollbacks.filter(state=RollbackState.PENDING).exists():
            return result
        keep_warm = float(
            deployment.effective_strategy_params.get("keep_warm_seconds", DEFAULT_KEEP_WARM_SECONDS)
        )
        if clock.now() < deployment.promoted_at + timedelta(seconds=keep_warm):
            return result
        runtime = engine.runtime_of(deployment)
        ref = engine.deployment_ref(deployment)
        stable = deployment.stable_version.number
        previous = (
            deployment.previous_stable_version.number
            if deployment.previous_stable_version
            else None
        )
        for number in runtime.list_versions(ref):
            if number == stable:
                continue
            if number == previous:
                status = runtime.version_status(ref, number)
                if status.desired_replicas > 0:
                    runtime.scale_version(ref, number, 0)
                    result.scaled_down.append(number)
            else:
                runtime.remove_version(ref, number)
                result.removed.append(number)
        if result.scaled_down or result.removed:
            audit.record(
                actor=engine.ENGINE,
                action="deployment.gc",
                target=deployment,
                after={
                    "scaled_to_zero": result.scaled_down,
                    "removed": result.removed,
                    "stable": stable,
                },
            )
    return result
