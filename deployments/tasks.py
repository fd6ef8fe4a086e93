"""Thin Celery tasks: each calls the engine by id. Runtime errors retry with backoff; whatever
happens, the beat sweep finds every active release again, so work is delayed, never lost."""

from __future__ import annotations

import time

from celery import shared_task
from django.conf import settings

from core import clock

from . import engine, gc
from .models import WAITING_FOR_A_PERSON, Deployment, Release, Rollback, RollbackState
from .runtime.base import TransientRuntimeError

RETRY = {
    "autoretry_for": (TransientRuntimeError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(name=engine.RECONCILE_TASK, acks_late=True, **RETRY)
def reconcile_release(release_id: int, force: bool = False) -> float | None:
    """Take the release's next step, then every step due at once after it (each in its own
    transaction), for up to ENGINE_CHAIN_SECONDS; then enqueue a look when the next one is due.
    Steps that follow each other at once (a deploy after a staging promotion, a traffic change
    after a passed analysis) so cost no broker round trip and no wait behind every other
    release's message: with hundreds of releases in flight, that wait was most of a step's lag
    (bench/engine_scale.py). The bound keeps one release from holding a worker process."""
    deadline = time.monotonic() + settings.ENGINE_CHAIN_SECONDS
    delay = engine.reconcile(release_id, force=force)
    while delay == 0.0 and time.monotonic() < deadline:
        delay = engine.reconcile(release_id)
    if delay is not None:
        reconcile_release.apply_async((release_id,), countdown=delay)
    return delay


@shared_task(name=engine.ROLLBACK_TASK, acks_late=True, **RETRY)
def execute_rollback(rollback_id: int) -> float | None:
    delay = engine.rollback_reconcile(rollback_id)
    if delay is not None:
        execute_rollback.apply_async((rollback_id,), countdown=delay)
    return delay


@shared_task(name="deployments.collect_garbage", ignore_result=True)
def collect_garbage() -> int:
    """Beat: scale down versions kept warm past their time, remove unreferenced ones."""
    done = 0
    for deployment_id in Deployment.objects.filter(promoted_at__isnull=False).values_list(
        "pk", flat=True
    ):
        collected = gc.collect(deployment_id)
        done += len(collected.scaled_down) + len(collected.removed)
    return done


@shared_task(name="deployments.sweep")
def sweep() -> dict[str, int]:
    """Beat: enqueue every release that is due (or overdue: a lost message, a dead worker) and
    every pending rollback."""
    now = clock.now()
    due = list(
        Release.objects.active()
        .exclude(state__in=sorted(WAITING_FOR_A_PERSON))
        .filter(next_reconcile_at__lte=now)
        .values_list("pk", flat=True)
    )
    stuck = list(
        Release.objects.active()
        .exclude(state__in=sorted(WAITING_FOR_A_PERSON))
        .filter(next_reconcile_at__isnull=True)
        .values_list("pk", flat=True)
    )
    for release_id in due + stuck:
        reconcile_release.apply_async((release_id,), {"force": release_id in stuck})
    rollbacks = list(
        Rollback.objects.filter(state=RollbackState.PENDING).values_list("pk", flat=True)
    )
    for rollback_id in rollbacks:
        execute_rollback.apply_async((rollback_id,))
    return {"releases": len(due) + len(stuck), "rollbacks": len(rollbacks)}
