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


def _follow_ups(monkeypatch) -> list[tuple[tuple, float | None]]:  # type: ignore[no-untyped-def]
    from deployments.tasks import reconcile_release

    sent: list[tuple[tuple, float | None]] = []
    monkeypatch.setattr(
        reconcile_release,
        "apply_async",
        lambda args, kwargs=None, countdown=None: sent.append((args, countdown)),
    )
    return sent


def test_a_reconcile_task_takes_the_steps_due_at_once_back_to_back(
    promoted_v1, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from deployments.tasks import reconcile_release

    sent = _follow_ups(monkeypatch)
    settings.ENGINE_CHAIN_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=False):
        release = promoted_v1.release(2)
    reconcile_release.run(release.pk, force=True)
    release.refresh_from_db()
    # Approved, then every plan step that was due at once (the fake API's Deployments are Ready
    # as soon as written), up to the first analysis window: all in this one task, each once.
    plan = engine.steps_of(release)
    taken = [
        index
        for kind, index in release.steps.exclude(plan_index=None).values_list("kind", "plan_index")
        if index < len(plan) and kind in (str(plan[index].action), "analysis")
    ]
    assert release.step_index > 2
    assert taken == list(range(release.step_index)), "each step taken once, in plan order"
    assert release.reconcile_count == release.step_index + 2  # the start, each step, the wait
    assert release.state == "progressing" and release.traffic["weights"] == {"1": 95, "2": 5}
    assert len(sent) == 1 and sent[0][1] > 0, "one follow-up, when the window is over"


def test_the_chain_is_bounded_and_hands_the_release_back_to_the_queue(
    world, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from deployments.tasks import reconcile_release

    sent = _follow_ups(monkeypatch)
    settings.ENGINE_CHAIN_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=False):
        release = world.release(1)
    reconcile_release.run(release.pk, force=True)
    release.refresh_from_db()
    assert release.reconcile_count == 1  # approved -> starting, nothing more
    assert sent == [((release.pk,), 0.0)], "the next step goes back to the queue, due now"
