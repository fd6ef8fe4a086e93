"""The reconcile loop on the fake Kubernetes API: canary to promotion, analysis verdicts."""

from __future__ import annotations

from kubernetes import client as k8s

from core import clock
from deployments import engine, services
from deployments.engine import StepPhase, steps_of
from deployments.models import ReleaseStep
from tests.deployments.conftest import drive


def test_a_first_release_goes_through_staging_and_serves_all_traffic(world):
    release = drive(world.release(1))
    assert release.state == "promoted", release.status_reason
    assert world.weights() == {1: 100}
    assert world.weights("ml-staging") == {1: 100}
    world.deployment.refresh_from_db()
    assert world.deployment.stable_version.number == 1
    kinds = list(release.steps.values_list("kind", flat=True))
    assert kinds.count("smoke") == 2  # staging and production
    note = release.steps.get(kind="note")
    assert "nothing to rehearse" in note.evidence["note"]


def test_a_canary_walks_its_weights_and_promotes(promoted_v1):
    world = promoted_v1
    release = world.release(2)
    seen = []
    for _ in range(200):
        release.refresh_from_db()
        if release.state == "promoted":
            break
        for rollback in release.rollbacks.filter(state="pending"):
            engine.rollback_reconcile(rollback.pk)
        engine.reconcile(release.pk, force=True)
        clock.advance(5)
        weights = world.weights()
        if weights and (not seen or seen[-1] != weights):
            seen.append(weights)
    release.refresh_from_db()
    assert release.state == "promoted", release.status_reason
    assert seen == [{1: 100}, {1: 95, 2: 5}, {1: 75, 2: 25}, {1: 50, 2: 50}, {2: 100}]
    # The stable version kept its full size during the canary: rollback is a traffic shift.
    assert world.replicas(1) == 3
    world.deployment.refresh_from_db()
    assert world.deployment.stable_version.number == 2
    assert world.deployment.previous_stable_version.number == 1
    analyses = ReleaseStep.objects.filter(release=release, kind="analysis")
    assert [a.evidence["weight"] for a in analyses] == [5, 25, 50]
    assert all(a.outcome == "pass" for a in analyses)


def test_the_rollback_rehearsal_runs_in_staging(promoted_v1):

    release = drive(promoted_v1.release(2))
    plan = steps_of(release)
    rehearsal = [
        s
        for s in release.steps.all()
        if s.plan_index is not None
        and s.plan_index < len(plan)
        and plan[s.plan_index].phase == StepPhase.REHEARSAL
        and s.kind in {"traffic", "smoke"}
    ]
    assert [(s.kind, getattr(plan[s.plan_index], "version", None)) for s in rehearsal] == [
        ("traffic", None),
        ("smoke", 1),
        ("traffic", None),
        ("smoke", 2),
    ]
    assert promoted_v1.weights("ml-staging") == {2: 100}


def test_new_versions_get_traffic_only_after_they_are_ready(promoted_v1):
    world = promoted_v1

    world.fake.auto_ready = False
    release = world.release(2)
    for _ in range(30):
        if world.fake.get("deployments", "ml-staging", "fraud-v2"):
            world.fake.mark_deployment_ready("ml-staging", "fraud-v2")  # staging only
        engine.reconcile(release.pk, force=True)
        clock.advance(2)
    release.refresh_from_db()
    assert release.state == "progressing"
    assert world.weights() == {1: 100}, "no traffic before v2 is observed ready"
    assert engine.current_step(release).action == engine.StepAction.AWAIT_READY
    world.fake.mark_deployment_ready("ml-prod", "fraud-v2")
    world.fake.auto_ready = True
    assert drive(release).state == "promoted"


def test_a_failing_analysis_rolls_back_on_its_own(promoted_v1):
    world = promoted_v1
    world.verdict("fail")
    release = drive(world.release(2))
    assert release.state == "rolled_back"
    assert world.weights() == {1: 100}
    assert release.traffic["weights"] == {"1": 100}, "the page shows where traffic went"
    assert world.replicas(2) == 0
    rollback = release.rollbacks.get()
    assert rollback.automatic and rollback.to_version.number == 1 and rollback.state == "done"
    world.deployment.refresh_from_db()
    assert world.deployment.stable_version.number == 1
    assert release.steps.filter(kind="analysis", outcome="fail").count() == 1


def test_an_inconclusive_analysis_pauses_and_notifies_once(promoted_v1):
    world = promoted_v1
    world.verdict("inconclusive")
    release = drive(world.release(2), until={"paused"})
    assert release.state == "paused"
    assert world.weights() == {1: 95, 2: 5}, "never promotes on no data"
    drive(release, max_steps=3, until={"never"}) if False else None

    for _ in range(3):
        assert engine.reconcile(release.pk, force=True) is None
        clock.advance(60)
    release.refresh_from_db()
    assert release.state == "paused"
    services.release_resume(actor=world.maintainer, release=release)
    release = drive(release, until={"paused"})
    assert release.steps.filter(kind="notify").count() == 1
    world.verdict("pass")
    services.release_resume(actor=world.maintainer, release=release)
    assert drive(release).state == "promoted"


def test_an_inconclusive_analysis_never_counts_as_a_failure(promoted_v1):
    promoted_v1.verdict("inconclusive")
    release = drive(promoted_v1.release(2), until={"paused"})
    assert not release.rollbacks.exists()
    assert release.steps.filter(kind="analysis", outcome="fail").count() == 0


def test_promotion_relabels_the_new_version_stable_without_restarting_its_pods(promoted_v1):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    name = f"{world.deployment.name}-v2"
    canary = world.fake.get("deployments", "ml-prod", name)
    assert canary["metadata"]["labels"]["modelplane.io/track"] == "canary"

    release = drive(release)

    assert release.state == "promoted", release.status_reason
    promoted = world.fake.get("deployments", "ml-prod", name)
    assert promoted["metadata"]["labels"]["modelplane.io/track"] == "stable"
    # Same pod template, same generation: nothing rolled (the track is metadata only).
    assert promoted["spec"]["template"] == canary["spec"]["template"]
    assert promoted["metadata"]["generation"] == canary["metadata"]["generation"]
    promote = release.steps.filter(kind="promote").order_by("-id").first()
    assert promote.evidence["track"] == "stable"


def test_a_canary_that_vanishes_while_awaited_comes_back_as_the_canary(promoted_v1):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    world.fake.auto_ready = False  # v2 is applied but never observed ready: the step waits
    for _ in range(10):
        step = engine.current_step(release)
        if step.action == engine.StepAction.AWAIT_READY and step.target == engine.StepTarget.TARGET:
            break
        engine.reconcile(release.pk, force=True)
        release.refresh_from_db()
    name = f"{world.deployment.name}-v2"
    k8s.AppsV1Api(world.fake.api_client()).delete_namespaced_deployment(name, "ml-prod")

    engine.reconcile(release.pk, force=True)

    again = world.fake.get("deployments", "ml-prod", name)
    assert again is not None, "applied again"
    assert again["metadata"]["labels"]["modelplane.io/track"] == "canary"
