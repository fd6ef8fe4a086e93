"""Every wait of a release ends at the deployment's configured progress deadline (120 s in this
world, see conftest.py), not at a fixed one: a version becoming ready, a traffic change reaching
the data plane, and a rollback's switch. The clock moves; nothing sleeps."""

from __future__ import annotations

import pytest

from core import clock
from deployments import engine, services
from deployments.engine import StepPhase, TrafficStep
from deployments.models import Release
from tests.deployments.conftest import drive

DEADLINE = 120


def walk_to_production_traffic(release: Release) -> TrafficStep:
    for _ in range(30):
        release.refresh_from_db()
        step = engine.current_step(release)
        if isinstance(step, TrafficStep) and step.phase == StepPhase.PRODUCTION:
            return step
        engine.reconcile(release.pk, force=True)
    raise AssertionError(f"no production traffic step reached: {engine.current_step(release)}")


def forget_traffic_deadlines(release: Release) -> None:
    """Make the plan look like one stored before traffic steps carried their deadline."""
    plan = [
        {k: v for k, v in step.items() if k != "deadline_seconds"}
        if step["action"] == "traffic"
        else step
        for step in release.plan
    ]
    Release.objects.filter(pk=release.pk).update(plan=plan)


@pytest.mark.parametrize("stored_before_traffic_deadlines", [False, True])
def test_a_traffic_change_the_data_plane_never_serves_fails_at_the_configured_deadline(
    promoted_v1, stored_before_traffic_deadlines
):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    if stored_before_traffic_deadlines:
        forget_traffic_deadlines(release)
    step = walk_to_production_traffic(release)
    assert step.deadline_seconds == (None if stored_before_traffic_deadlines else DEADLINE)
    index = release.step_index
    world.fake.gateway.hold()  # the Gateway never programs the route
    assert engine.reconcile(release.pk, force=True) == 1.0, "the route is written, not served"
    clock.advance(DEADLINE - 5)
    assert engine.reconcile(release.pk, force=True) == 1.0, "still within the deadline"
    release.refresh_from_db()
    assert (release.state, release.step_index) == ("progressing", index)
    clock.advance(10)
    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert release.state == "rolling_back"
    failed = release.steps.get(kind="traffic", outcome="fail")
    assert failed.plan_index == index
    assert failed.reason == (
        f"the traffic change never reached the data plane within the progress deadline of "
        f"{DEADLINE}s"
    )


def test_a_version_that_never_gets_ready_for_traffic_fails_at_the_configured_deadline(
    promoted_v1,
):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    walk_to_production_traffic(release)
    # The canary lost its pods between its readiness check and its first traffic step, and the
    # ones brought back never get ready.
    world.fake.auto_ready = False
    engine.runtime_of(world.deployment).scale_version(engine.deployment_ref(world.deployment), 2, 0)
    assert engine.reconcile(release.pk, force=True) is not None
    clock.advance(DEADLINE - 5)
    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert release.state == "progressing"
    clock.advance(10)
    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert release.state == "rolling_back"
    failed = release.steps.get(kind="traffic", outcome="fail")
    assert failed.reason == (
        f"v2 did not become ready to receive traffic within the progress deadline of {DEADLINE}s"
    )


def test_a_rollback_switch_the_data_plane_never_serves_fails_at_the_configured_deadline(
    promoted_v1,
):
    world = promoted_v1
    drive(world.release(2))
    world.deployment.refresh_from_db()
    world.fake.gateway.hold()
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    assert engine.rollback_reconcile(rollback.pk) is not None
    clock.advance(DEADLINE - 5)
    assert engine.rollback_reconcile(rollback.pk) is not None, "still within the deadline"
    rollback.refresh_from_db()
    assert rollback.state == "pending"
    clock.advance(10)
    assert engine.rollback_reconcile(rollback.pk) is None
    rollback.refresh_from_db()
    assert rollback.state == "failed"
    assert f"within the progress deadline of {DEADLINE}s" in rollback.evidence["error"]
    assert world.replicas(2) == 3, "nothing was scaled down before the switch was served"


def test_a_rollback_target_that_never_comes_back_fails_at_the_configured_deadline(promoted_v1):
    world = promoted_v1
    drive(world.release(2))
    world.deployment.refresh_from_db()
    world.fake.auto_ready = False
    ref = engine.deployment_ref(world.deployment)
    engine.runtime_of(world.deployment).scale_version(ref, 1, 0)  # v1 kept warm no longer
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    assert engine.rollback_reconcile(rollback.pk) is not None, "v1 is brought back up"
    clock.advance(DEADLINE - 5)
    assert engine.rollback_reconcile(rollback.pk) is not None
    clock.advance(10)
    assert engine.rollback_reconcile(rollback.pk) is None
    rollback.refresh_from_db()
    assert rollback.state == "failed"
    assert f"within the progress deadline of {DEADLINE}s" in rollback.evidence["error"]
    assert world.weights() == {2: 100}, "traffic stays where it was served"


def held_release_rolling_back(world) -> Release:  # type: ignore[no-untyped-def]
    """A release whose production traffic change is never served, so it turns around, with the
    Gateway still holding every route: its rollback's switch is not served either."""
    release = drive(world.release(2), until={"progressing"})
    walk_to_production_traffic(release)
    world.fake.gateway.hold()
    engine.reconcile(release.pk, force=True)
    clock.advance(DEADLINE + 5)
    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert release.state == "rolling_back"
    return release


def test_a_release_whose_rollback_failed_tries_again_and_ends_rolled_back_once_served(
    promoted_v1,
):
    world = promoted_v1
    release = held_release_rolling_back(world)
    first = release.rollbacks.get()
    engine.reconcile(release.pk, force=True)
    clock.advance(DEADLINE + 5)
    engine.reconcile(release.pk, force=True)
    first.refresh_from_db()
    assert first.state == "failed"
    release.refresh_from_db()
    assert release.state == "rolling_back", "a failed rollback is tried again, not abandoned"
    engine.reconcile(release.pk, force=True)  # the next pass starts the next attempt
    retry = release.rollbacks.order_by("-id").first()
    assert retry.pk != first.pk and retry.state == "pending"
    assert retry.evidence["retry_of"] == first.pk and retry.evidence["attempt"] == 2
    assert "within the progress deadline" in retry.evidence["previous_error"]
    # The data plane catches up (a starved host, a slow controller): the retry completes.
    world.fake.gateway.accept_automatically()
    ref = engine.deployment_ref(world.deployment)
    world.fake.gateway.accept(ref.namespace, ref.name)
    release = drive(release)
    assert release.state == "rolled_back"
    assert world.weights() == {1: 100}


def test_a_release_whose_every_rollback_attempt_fails_fails_and_says_to_roll_back_by_hand(
    promoted_v1, settings
):
    settings.RELEASE_ROLLBACK_ATTEMPTS = 2
    world = promoted_v1
    release = held_release_rolling_back(world)
    for _ in range(4):
        engine.reconcile(release.pk, force=True)
        clock.advance(DEADLINE + 5)
    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert release.state == "failed"
    assert release.rollbacks.count() == 2
    assert set(release.rollbacks.values_list("state", flat=True)) == {"failed"}
    step = release.steps.get(kind="fail", outcome="fail")
    assert "the rollback to v1 failed 2 times" in step.reason
    assert "roll back by hand" in step.reason
    assert step.evidence["attempts"] == 2
