"""Blue-green, shadow and rolling releases; progress deadlines; abort; manual rollback."""

from __future__ import annotations

import pytest

from core import clock
from core.errors import Conflict
from deployments import engine, services
from deployments.models import Release
from identity.audit import Actor
from identity.models import Membership
from tests.deployments.conftest import drive


def configure(world, strategy, **params):  # type: ignore[no-untyped-def]
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy=strategy,
        strategy_params=params,
    )
    world.deployment.refresh_from_db()


def test_blue_green_brings_the_new_colour_up_then_switches(promoted_v1):
    world = promoted_v1
    configure(world, "blue_green", keep_warm_seconds=600)
    release = world.release(2)
    release = drive(release, until={"progressing"})
    obj = None
    for _ in range(20):
        engine.reconcile(release.pk, force=True)
        obj = world.fake.get("deployments", "ml-prod", "fraud-v2")
        if obj and world.weights() == {1: 100}:
            break
    assert obj["metadata"]["labels"]["modelplane.io/track"] == "preview"
    assert obj["spec"]["replicas"] == 3, "the new colour comes up at full size"
    release = drive(release)
    assert release.state == "promoted"
    assert world.weights() == {2: 100}
    assert world.replicas(1) == 3, "the old colour stays warm for an instant rollback"
    rollback = services.deployment_rollback(
        actor=world.maintainer, deployment=world.deployment, reason="bad numbers"
    )
    engine.rollback_reconcile(rollback.pk)
    assert world.weights() == {1: 100}
    world.deployment.refresh_from_db()
    assert world.deployment.stable_version.number == 1


def test_shadow_mirrors_without_answering_then_promotes(promoted_v1):
    world = promoted_v1
    configure(world, "shadow", mirror_percent=30, analysis_interval_seconds=60)
    release = world.release(2)
    mirrors = []
    for _ in range(100):
        release.refresh_from_db()
        if release.is_terminal:
            break
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
        if world.mirror():
            mirrors.append((world.weights(), world.mirror()))
    assert release.state == "promoted"
    weights, mirror = mirrors[0]
    assert weights == {1: 100}, "the shadow never answers"
    assert mirror["percent"] == 30 and mirror["backendRef"]["name"] == "fraud-v2"
    assert world.weights() == {2: 100} and world.mirror() is None
    assert release.steps.filter(kind="analysis", outcome="pass").count() == 1


def test_rolling_switches_without_analysis(promoted_v1):
    configure(promoted_v1, "rolling")
    release = drive(promoted_v1.release(2))
    assert release.state == "promoted"
    assert not release.steps.filter(kind="analysis").exists()


def test_a_progress_deadline_fails_the_step_and_rolls_back(promoted_v1):
    world = promoted_v1
    release = world.release(2)
    release = drive(release, until={"progressing"})
    world.fake.auto_ready = False
    world.fake.mark_progress_deadline_exceeded("ml-prod", "fraud-v2")
    release = drive(release)
    assert release.state == "rolled_back"
    assert "failed to become ready" in release.steps.get(kind="await_ready", outcome="fail").reason
    assert world.weights() == {1: 100}


def test_a_version_that_never_becomes_ready_fails_at_its_deadline_in_staging(promoted_v1):
    world = promoted_v1
    world.fake.auto_ready = False
    release = drive(world.release(2))
    assert release.state == "failed"
    assert "progress deadline" in release.status_reason
    assert world.weights("ml-staging") == {1: 100}, "staging keeps serving what it served"
    assert world.weights() == {1: 100}


def test_an_aborted_canary_goes_back_and_stays_aborted(promoted_v1):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    for _ in range(12):
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
    assert world.weights() == {1: 95, 2: 5}
    services.release_abort(actor=world.maintainer, release=release, reason="wrong model")
    release = drive(release)
    assert release.state == "aborted"
    assert world.weights() == {1: 100}
    for _ in range(3):
        assert engine.reconcile(release.pk, force=True) is None
        clock.advance(600)
    release.refresh_from_db()
    assert release.state == "aborted", "an aborted release never retries itself"


def test_a_failing_smoke_test_fails_the_release_in_staging(promoted_v1, settings):
    world = promoted_v1
    world.versions[2].example_requests = [{"instances": [{"age": 1, "plan": "pro"}]}]
    world.versions[2].output_schema = {"type": "object", "required": ["score"]}
    world.versions[2].save()
    release = drive(world.release(2))
    assert release.state == "failed"
    smoke = release.steps.get(kind="smoke", outcome="fail")
    assert smoke.evidence["results"][0]["schema_errors"]
    assert world.weights() == {1: 100}


def test_rollback_after_promotion_returns_to_the_previous_version(promoted_v1):
    world = promoted_v1
    drive(world.release(2))
    world.deployment.refresh_from_db()
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    assert rollback.to_version.number == 1
    assert engine.rollback_reconcile(rollback.pk) is None
    assert world.weights() == {1: 100}
    assert world.replicas(2) == 0
    rollback.refresh_from_db()
    assert rollback.state == "done"


def test_rollback_needs_no_metrics_source(promoted_v1):
    """The production environment points at a Prometheus that does not exist."""
    world = promoted_v1
    assert world.production.metrics_url == "http://127.0.0.1:9"
    world.verdict("fail")  # irrelevant: rollback never asks
    release = drive(world.release(2), until={"progressing"})
    for _ in range(12):
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    engine.rollback_reconcile(rollback.pk)
    assert world.weights() == {1: 100}
    assert drive(release).state == "rolled_back"


def test_an_on_call_viewer_may_press_rollback(promoted_v1, people, team):
    drive(promoted_v1.release(2))
    Membership.objects.filter(team=team, user=people["viewer"]).update(is_on_call=True)
    rollback = services.deployment_rollback(
        actor=Actor.from_principal(people["viewer"]), deployment=promoted_v1.deployment
    )
    assert rollback.to_version.number == 1


def test_a_rollback_racing_a_promote(promoted_v1):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    for _ in range(12):
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    with pytest.raises(Conflict):
        services.release_promote(actor=world.maintainer, release=release)
    engine.reconcile(release.pk, force=True)  # the engine never walks on after a rollback
    engine.rollback_reconcile(rollback.pk)
    release = drive(release)
    assert release.state == "rolled_back"
    assert world.weights() == {1: 100}
    world.deployment.refresh_from_db()
    assert world.deployment.stable_version.number == 1
    assert Release.objects.filter(state="promoted").count() == 1  # only v1's first release


def test_nothing_is_scaled_down_before_the_data_plane_serves_the_switch(promoted_v1):
    world = promoted_v1
    drive(world.release(2))
    world.deployment.refresh_from_db()
    world.fake.gateway.hold()  # the Gateway has not programmed the change yet
    rollback = services.deployment_rollback(actor=world.maintainer, deployment=world.deployment)
    assert engine.rollback_reconcile(rollback.pk) is not None
    assert world.weights() == {1: 100}, "the route is written"
    assert world.replicas(2) == 3, "v2 keeps serving until the switch is live"
    world.fake.gateway.accept("ml-prod", "fraud")
    assert engine.rollback_reconcile(rollback.pk) is None
    assert world.replicas(2) == 0
    rollback.refresh_from_db()
    assert rollback.state == "done"


def test_a_canary_step_waits_while_the_route_is_not_accepted_and_proceeds_once_it_is(
    promoted_v1,
):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    world.fake.gateway.hold()  # from now on, a route is Accepted only when the Gateway says so
    for _ in range(12):  # a minute of reconciles: written, never served
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
    release.refresh_from_db()
    assert release.state == "progressing"
    assert engine.current_step(release).action == engine.StepAction.TRAFFIC
    assert world.weights() == {1: 95, 2: 5}, "the split is written to the route"
    conditions = world.route()["status"]["parents"][0]["conditions"]
    assert conditions[0]["observedGeneration"] < world.route()["metadata"]["generation"]
    assert not release.steps.filter(kind="analysis").exists(), "no window on unserved traffic"

    world.fake.gateway.accept("ml-prod", "fraud")

    engine.reconcile(release.pk, force=True)
    release.refresh_from_db()
    assert engine.current_step(release).action == engine.StepAction.ANALYZE
    world.fake.gateway.accept_automatically()
    assert drive(release).state == "promoted"
