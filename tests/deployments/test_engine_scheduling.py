"""The engine enqueues its tasks by name (it never imports deployments.tasks), only once the
transaction commits, and with task_always_eager they still run in process."""

from __future__ import annotations

from celery import current_app

from deployments import engine, services
from tests.deployments.conftest import drive


def test_a_reconcile_is_sent_by_name_and_only_after_the_commit(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []

    def send_task(name, args=None, kwargs=None, **options):  # type: ignore[no-untyped-def]
        sent.append((name, tuple(args), kwargs, options.get("countdown")))

    monkeypatch.setattr(current_app._get_current_object(), "send_task", send_task)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        engine.schedule_reconcile(42, countdown=3.0)
        engine.schedule_rollback(7)
    assert sent == [], "nothing leaves before the commit"
    for callback in callbacks:
        callback()
    assert sent == [
        ("deployments.reconcile_release", (42,), {"force": True}, 3.0),
        ("deployments.execute_rollback", (7,), {}, None),
    ]


def test_with_task_always_eager_a_rollback_runs_in_process(
    promoted_v1, django_capture_on_commit_callbacks
):
    world = promoted_v1
    drive(world.release(2))
    world.deployment.refresh_from_db()
    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            rollback = services.deployment_rollback(
                actor=world.maintainer, deployment=world.deployment
            )
    finally:
        current_app.conf.task_always_eager = eager
    rollback.refresh_from_db()
    assert rollback.state == "done"
    assert world.weights() == {1: 100}
