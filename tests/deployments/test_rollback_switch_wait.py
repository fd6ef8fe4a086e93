"""A rollback waits a short while for the data plane to serve its switch and then finishes in the
same run (no second broker round trip), waiting with no transaction or row lock of its own held;
when the switch is not served within that wait it falls back to looking again after a countdown,
with nothing scaled down."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from deployments import engine, services
from deployments.engine.rollback import SWITCH_RECHECK_SECONDS
from deployments.runtime.kubernetes import KubernetesRuntime
from tests.deployments.conftest import drive
from tests.deployments.test_engine_deadlines import walk_to_production_traffic


@pytest.fixture
def promoted_v2(promoted_v1):
    world = promoted_v1
    assert drive(world.release(2)).state == "promoted"
    world.deployment.refresh_from_db()
    return world


def accept_when_switched(world, weights: dict[int, int]) -> threading.Thread:
    """The Gateway controller, late: it accepts the route once it holds `weights`."""
    ref = engine.deployment_ref(world.deployment)

    def controller() -> None:
        deadline = time.monotonic() + 10
        while world.weights() != weights and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        world.fake.gateway.accept(ref.namespace, ref.name)

    thread = threading.Thread(target=controller, daemon=True)
    thread.start()
    return thread


def test_a_rollback_waits_for_a_late_switch_and_finishes_in_one_run(
    promoted_v2, settings, monkeypatch
):
    world = promoted_v2
    settings.RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS = 10
    world.fake.gateway.hold()
    depth = len(connection.atomic_blocks)  # the test's own transaction
    looked_at: list[int] = []
    traffic_applied = KubernetesRuntime.traffic_applied

    def watched(self, ref, split):  # type: ignore[no-untyped-def]
        looked_at.append(len(connection.atomic_blocks) - depth)
        return traffic_applied(self, ref, split)

    monkeypatch.setattr(KubernetesRuntime, "traffic_applied", watched)
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    controller = accept_when_switched(world, {1: 100})

    assert engine.rollback_reconcile(rollback.pk) is None, "done, nothing left to look at"

    controller.join(timeout=5)
    rollback.refresh_from_db()
    assert rollback.state == "done"
    assert world.weights() == {1: 100}
    assert world.replicas(2) == 0, "scaled down once the switch was served"
    assert 0 in looked_at, "the wait holds no transaction (nor row lock) of the rollback's"
    assert looked_at[0] == looked_at[-1] == 1, "the step itself runs under the row lock"


@pytest.mark.parametrize("wait", [0.0, 0.05])
def test_a_switch_not_served_within_the_wait_falls_back_to_the_countdown(
    promoted_v2, settings, wait
):
    world = promoted_v2
    settings.RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS = wait
    world.fake.gateway.hold()
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)

    assert engine.rollback_reconcile(rollback.pk) == SWITCH_RECHECK_SECONDS

    rollback.refresh_from_db()
    assert rollback.state == "pending"
    assert world.weights() == {1: 100}, "the switch is written"
    assert world.replicas(2) == 3, "nothing is scaled down before the switch is served"
    ref = engine.deployment_ref(world.deployment)
    world.fake.gateway.accept(ref.namespace, ref.name)
    assert engine.rollback_reconcile(rollback.pk) is None
    rollback.refresh_from_db()
    assert rollback.state == "done"
    assert world.replicas(2) == 0


def test_a_release_turned_around_looks_again_after_the_countdown_while_not_served(
    promoted_v1, settings
):
    world = promoted_v1
    settings.RELEASE_ROLLBACK_SWITCH_WAIT_SECONDS = 0.0
    release = drive(world.release(2), until={"progressing"})
    walk_to_production_traffic(release)
    engine.reconcile(release.pk, force=True)  # production traffic moved: a turn-around
    world.fake.gateway.hold()
    services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    release.refresh_from_db()
    assert release.state == "rolling_back"

    assert engine.reconcile(release.pk, force=True) == SWITCH_RECHECK_SECONDS

    release.refresh_from_db()
    assert release.state == "rolling_back"
    assert release.rollbacks.get().state == "pending"
    ref = engine.deployment_ref(world.deployment)
    world.fake.gateway.accept(ref.namespace, ref.name)
    assert drive(release).state == "rolled_back"
