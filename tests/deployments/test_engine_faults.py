"""Fault tests: a crash between every pair of side effects, duplicated tasks, runtime errors,
and two workers on one release. After each, the invariants hold: one stable version, weights
that sum to 100, and an audit trail that matches what happened."""

from __future__ import annotations

import contextlib

from django.db import transaction

from core import clock
from deployments import engine
from deployments.engine import StepAction, binding, steps_of
from deployments.models import ReleaseStep
from deployments.runtime.base import TrafficSplit, TransientRuntimeError
from tests.deployments.conftest import drive

SIDE_EFFECTS = {"apply_version", "set_traffic", "scale_version", "remove_version"}


class Crash(Exception):
    """A worker dying right after a runtime call, before its transaction commits."""


class CrashingRuntime:
    def __init__(self, inner, crash_after: int):  # type: ignore[no-untyped-def]
        self.inner, self.crash_after, self.count = inner, crash_after, 0

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        attr = getattr(self.inner, name)
        if name not in SIDE_EFFECTS:
            return attr

        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            result = attr(*args, **kwargs)
            self.count += 1
            if self.count == self.crash_after:
                raise Crash(f"crash after side effect #{self.count} ({name})")
            return result

        return call


def assert_invariants(world, release):  # type: ignore[no-untyped-def]
    weights = world.weights()
    assert sum(weights.values()) == 100
    world.deployment.refresh_from_db()
    stable = world.deployment.stable_version.number
    assert stable in weights and weights[stable] > 0
    # Every plan step that completed was recorded exactly once.
    done = ReleaseStep.objects.filter(
        release=release, outcome="ok", plan_index__isnull=False
    ).exclude(kind="analysis")
    plan = steps_of(release)
    indexes = [
        s.plan_index for s in done if s.kind == plan[min(s.plan_index, len(plan) - 1)].action
    ]
    assert len(indexes) == len(set(indexes)), "a step was recorded twice"


def count_side_effects(world, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    """How many runtime writes a clean canary release of v2 makes."""
    counter = CrashingRuntime(None, crash_after=-1)
    real = binding.runtime_for

    def counting(kind, config):  # type: ignore[no-untyped-def]
        counter.inner = real(kind, config)
        return counter

    # Every module of the engine reaches the runtime through binding.runtime_of.
    with monkeypatch.context() as patch:
        patch.setattr(binding, "runtime_for", counting)
        with transaction.atomic():
            sid = transaction.savepoint()
            release = drive(world.release(2))
            assert release.state == "promoted"
            transaction.savepoint_rollback(sid)
    return counter.count


def test_a_crash_between_any_two_side_effects_is_safe(promoted_v1, monkeypatch):
    world = promoted_v1
    total = count_side_effects(world, monkeypatch)
    assert total >= 8
    real = binding.runtime_for
    for crash_at in range(1, total + 1):
        with transaction.atomic():
            sid = transaction.savepoint()
            crashing = CrashingRuntime(None, crash_at)

            def crash_once(kind, config, crashing=crashing):  # type: ignore[no-untyped-def]
                crashing.inner = real(kind, config)
                return crashing

            monkeypatch.setattr(binding, "runtime_for", crash_once)
            release = world.release(2)
            crashed = False
            for _ in range(400):
                release.refresh_from_db()
                if release.is_terminal:
                    break
                try:
                    engine.reconcile(release.pk, force=True)
                except Crash:
                    crashed = True
                clock.advance(5)
            monkeypatch.setattr(binding, "runtime_for", real)
            release.refresh_from_db()
            assert crashed, f"no crash at {crash_at}"
            assert release.state == "promoted", (crash_at, release.state, release.status_reason)
            assert_invariants(world, release)
            transaction.savepoint_rollback(sid)
            # The database went back to "v1 serves"; put the fake cluster back there too.
            engine.runtime_of(world.deployment).set_traffic(
                engine.deployment_ref(world.deployment), TrafficSplit.all_to(1)
            )


def test_a_duplicated_task_does_not_double_a_step(promoted_v1):
    world = promoted_v1
    release = world.release(2)
    for _ in range(300):
        release.refresh_from_db()
        if release.is_terminal:
            break
        first = engine.reconcile(release.pk, force=True)
        second = engine.reconcile(release.pk)  # the same message delivered twice
        assert second is None or first == 0.0
        clock.advance(5)
    assert release.state == "promoted"
    traffic_steps = ReleaseStep.objects.filter(release=release, kind="traffic")
    plan_traffic = [i for i, s in enumerate(steps_of(release)) if s.action == StepAction.TRAFFIC]
    assert sorted(traffic_steps.values_list("plan_index", flat=True)) == plan_traffic


def test_transient_runtime_errors_retry_and_converge(promoted_v1):
    world = promoted_v1
    release = world.release(2)
    world.fake.fail_next("PUT", r".*/httproutes/.*", status=500, times=4)
    errors = 0
    for _ in range(300):
        release.refresh_from_db()
        if release.is_terminal:
            break
        try:
            engine.reconcile(release.pk, force=True)
        except TransientRuntimeError:
            errors += 1  # the task retries with backoff; nothing was recorded
        clock.advance(5)
    assert errors >= 1
    assert release.state == "promoted"
    assert_invariants(world, release)


def test_a_conflict_on_a_stale_write_is_retried(promoted_v1):
    world = promoted_v1
    world.fake.fail_next("PUT", r".*/httproutes/.*", status=409, times=1)
    release = drive(world.release(2))
    assert release.state == "promoted"


def test_a_timeout_is_a_transient_error(promoted_v1):
    world = promoted_v1
    release = drive(world.release(2), until={"progressing"})
    world.fake.delay_next("GET", r".*/deployments/fraud-v2$", seconds=3, times=2)
    with contextlib.suppress(TransientRuntimeError):
        engine.reconcile(release.pk, force=True)
    assert drive(release).state == "promoted"
