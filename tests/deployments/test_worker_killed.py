"""A worker killed in the middle of a release (SIGKILL: no cleanup, unacked messages held)
loses no work: another worker, woken by the beat sweep, finishes the release exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings

from core import clock
from deployments import services
from deployments.models import Environment, ReleaseStep
from deployments.tasks import sweep
from tests.support.analyzers import VERDICT_FILE_ENV
from tests.support.celery import celery_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)"),
]


def test_a_killed_worker_loses_no_work(transactional_db, promoted_v1, tmp_path, monkeypatch):
    world = promoted_v1
    clock.reset()
    # The scripted analyzer decides; with no metrics source, short windows are allowed.
    Environment.objects.filter(pk=world.production.pk).update(metrics_kind="none")
    world.deployment.refresh_from_db()
    env = {
        "MODELPLANE_ANALYZER": "tests.support.analyzers.ScriptedAnalyzer",
        VERDICT_FILE_ENV: str(world.verdict_file),
    }
    services.deployment_configure(
        actor=world.maintainer,
        deployment=world.deployment,
        strategy_params={
            "steps": [10, 50, 100],
            "analysis_interval_seconds": 3,
            "min_requests": 1,
            "progress_deadline_seconds": 60,
        },
    )
    with celery_worker(tmp_path / "a.log", name="a", extra_env=env) as first:
        release = world.release(2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            release.refresh_from_db()
            if release.state == "progressing" and release.traffic:
                break
            time.sleep(0.1)
        assert release.state == "progressing"
        os.killpg(first.pid, signal.SIGKILL)  # mid-release, mid-analysis window
        first.wait(10)
    frozen = release.step_index
    time.sleep(4)
    release.refresh_from_db()
    assert release.step_index == frozen, "nothing moves without a worker"
    with celery_worker(tmp_path / "b.log", name="b", extra_env=env):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            release.refresh_from_db()
            if release.is_terminal:
                break
            sweep.delay()  # what beat does every SWEEP_INTERVAL_SECONDS
            time.sleep(2)
    assert release.state == "promoted", release.status_reason
    assert world.weights() == {2: 100}
    steps = ReleaseStep.objects.filter(release=release, kind="traffic")
    indexes = list(steps.values_list("plan_index", flat=True))
    assert len(indexes) == len(set(indexes)), "no step was applied twice"
