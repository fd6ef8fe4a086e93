"""When the engine looks again: its Celery tasks, enqueued by name once the current transaction
commits. Never imports deployments.tasks (which imports the engine): the names are the contract."""

from __future__ import annotations

from celery import current_app
from django.db import transaction

RECONCILE_TASK = "deployments.reconcile_release"
ROLLBACK_TASK = "deployments.execute_rollback"
POLL_SECONDS = 2.0  # how soon to look again while waiting on the runtime


def _enqueue(
    name: str, args: tuple[int], kwargs: dict[str, bool], countdown: float | None = None
) -> None:
    # A signature by name runs through the registered task when this process has imported it
    # (so the task's own options hold), else through send_task: either way, the same message on
    # the default queue. send_task never runs a task eagerly, so with task_always_eager the
    # app's task modules are loaded first (Celery's autodiscovery, not an import of ours).
    if current_app.conf.task_always_eager:
        current_app.loader.import_default_modules()
    current_app.signature(name, args=args, kwargs=kwargs).apply_async(countdown=countdown)


def schedule_reconcile(release_id: int, countdown: float = 0.0) -> None:
    """Enqueue a reconcile once the current transaction commits (never before: the worker must
    see what we wrote)."""
    transaction.on_commit(
        lambda: _enqueue(RECONCILE_TASK, (release_id,), {"force": True}, countdown)
    )


def schedule_rollback(rollback_id: int) -> None:
    transaction.on_commit(lambda: _enqueue(ROLLBACK_TASK, (rollback_id,), {}))
