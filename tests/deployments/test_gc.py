"""After a promotion the old version stays warm, then is scaled to zero; others are removed."""

from __future__ import annotations

from core import clock
from deployments import engine, gc, services
from identity.models import AuditEvent
from tests.deployments.conftest import drive


def test_the_old_version_stays_warm_then_scales_to_zero(promoted_v1):
    world = promoted_v1
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy="rolling",
        strategy_params={"keep_warm_seconds": 600},
    )
    drive(world.release(2))
    assert gc.collect(world.deployment.pk).scaled_down == []
    assert world.replicas(1) == 3, "warm for an instant rollback"
    clock.advance(601)
    assert gc.collect(world.deployment.pk).scaled_down == [1]
    assert world.replicas(1) == 0
    assert world.fake.get("deployments", "ml-prod", "fraud-v1") is not None, "objects are kept"
    assert AuditEvent.objects.filter(action="deployment.gc").count() == 1


def test_versions_no_longer_referenced_are_removed(promoted_v1):
    world = promoted_v1
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy="rolling",
        strategy_params={"keep_warm_seconds": 0},
    )
    drive(world.release(2))
    drive(world.release(3))
    result = gc.collect(world.deployment.pk)
    assert result.removed == [1] and result.scaled_down == [2]
    assert world.fake.get("deployments", "ml-prod", "fraud-v1") is None
    assert world.fake.get("services", "ml-prod", "fraud-v1") is None
    assert world.weights() == {3: 100}


def test_a_rollback_after_scale_down_brings_the_old_version_back(promoted_v1):
    world = promoted_v1
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy="rolling",
        strategy_params={"keep_warm_seconds": 0},
    )
    drive(world.release(2))
    gc.collect(world.deployment.pk)
    assert world.replicas(1) == 0
    world.deployment.refresh_from_db()
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    for _ in range(10):
        if engine.rollback_reconcile(rollback.pk) is None:
            break
    rollback.refresh_from_db()
    assert rollback.state == "done"
    assert world.replicas(1) == 3 and world.weights() == {1: 100}


def test_it_leaves_a_deployment_with_an_active_release_alone(promoted_v1):
    world = promoted_v1
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy_params={"keep_warm_seconds": 0},
    )
    drive(world.release(2), until={"progressing"})
    assert gc.collect(world.deployment.pk).removed == []
