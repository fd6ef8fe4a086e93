"""Releases run by a real Celery worker process over the real Redis, against the fake
Kubernetes API: canary, blue-green and shadow to promotion and back, automatic rollback on a
failing analysis, a pause on an inconclusive one, and the sweep recovering a lost message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from core import clock
from deployments import services
from deployments.models import Environment, Release, Rollback
from identity.models import AuditEvent
from tests.support.analyzers import VERDICT_FILE_ENV
from tests.support.celery import celery_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)"),
]

FAST = {"analysis_interval_seconds": 1, "min_requests": 1, "progress_deadline_seconds": 60}


@pytest.fixture(scope="module")
def verdict_file(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("verdict") / "verdict"
    path.write_text("pass")
    return path


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker, verdict_file, tmp_path_factory) -> Iterator[None]:  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with (
        django_db_blocker.unblock(),
        celery_worker(
            log,
            concurrency=2,
            extra_env={
                "MODELPLANE_ANALYZER": "tests.support.analyzers.ScriptedAnalyzer",
                VERDICT_FILE_ENV: str(verdict_file),
            },
        ),
    ):
        yield


@pytest.fixture
def live(transactional_db, worker, promoted_v1, verdict_file, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(VERDICT_FILE_ENV, str(verdict_file))
    verdict_file.write_text("pass")
    promoted_v1.verdict_file = verdict_file
    clock.reset()  # the worker reads the wall clock; so must the test from here on
    # The scripted analyzer decides; with no metrics source, 1 s analysis windows are allowed.
    Environment.objects.filter(pk=promoted_v1.production.pk).update(metrics_kind="none")
    promoted_v1.deployment.refresh_from_db()
    return promoted_v1


def wait_for_state(release: Release, states: set[str], timeout: float = 60.0) -> Release:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release.refresh_from_db()
        if release.state in states:
            return release
        time.sleep(0.2)
    raise AssertionError(
        f"release #{release.pk} is {release.state}, wanted {states}; "
        f"last steps: {list(release.steps.values_list('kind', 'outcome'))[-5:]}"
    )


def wait_for_rollback(rollback: Rollback, timeout: float = 30.0) -> Rollback:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rollback.refresh_from_db()
        if rollback.state != "pending":
            return rollback
        time.sleep(0.2)
    raise AssertionError("rollback still pending")


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("canary", {"steps": [10, 50, 100], **FAST}),
        ("blue_green", {"keep_warm_seconds": 600, **FAST}),
        ("shadow", {"mirror_percent": 20, **FAST}),
    ],
)
def test_a_release_runs_to_promotion_on_a_worker_and_rolls_back(live, strategy, params):
    services.deployment_configure(
        actor=live.maintainer, deployment=live.deployment, strategy=strategy, strategy_params=params
    )
    live.deployment.refresh_from_db()
    release = wait_for_state(live.release(2), {"promoted", "failed", "rolled_back"})
    assert release.state == "promoted", release.status_reason
    assert live.weights() == {2: 100}
    rollback = services.deployment_rollback(
        actor=live.maintainer, deployment=live.deployment, reason="pressed the button"
    )
    assert wait_for_rollback(rollback).state == "done"
    assert live.weights() == {1: 100}


def test_a_failing_analysis_rolls_back_on_a_worker(live):
    services.deployment_configure(
        actor=live.maintainer,
        deployment=live.deployment,
        strategy_params={"steps": [10, 100], **FAST},
    )
    live.verdict("fail")
    release = wait_for_state(live.release(2), {"rolled_back", "promoted", "failed"})
    assert release.state == "rolled_back"
    assert live.weights() == {1: 100}


def test_an_inconclusive_analysis_pauses_on_a_worker(live):
    services.deployment_configure(
        actor=live.maintainer,
        deployment=live.deployment,
        strategy_params={"steps": [10, 100], **FAST},
    )
    live.verdict("inconclusive")
    release = wait_for_state(live.release(2), {"paused", "promoted", "rolled_back"})
    assert release.state == "paused"
    assert live.weights() == {1: 90, 2: 10}
    time.sleep(3)
    release.refresh_from_db()
    assert release.state == "paused"
    assert release.steps.filter(kind="notify").count() == 1


def test_the_sweep_finds_a_release_whose_message_was_lost(live):
    from django.db import transaction

    from deployments.tasks import sweep

    services.deployment_configure(
        actor=live.maintainer, deployment=live.deployment, strategy="rolling", strategy_params={}
    )
    # Lose the message: create the release without letting on_commit enqueue anything.
    with transaction.atomic():
        release = live.release(2)
        transaction.get_connection().run_on_commit.clear()
    time.sleep(1)
    release.refresh_from_db()
    assert release.reconcile_count == 0
    sweep.delay().get(timeout=20)
    assert wait_for_state(release, {"promoted"}).state == "promoted"


def test_rollback_from_the_api_runs_on_the_worker(live, client_for):
    services.deployment_configure(
        actor=live.maintainer, deployment=live.deployment, strategy="rolling", strategy_params={}
    )
    release = wait_for_state(live.release(2), {"promoted"})
    assert release.state == "promoted"
    response = client_for("maintainer").post(
        f"/api/v1/deployments/{live.deployment.pk}/rollback/", {"reason": "api"}, format="json"
    )
    assert response.status_code == 202, response.content
    rollback = Rollback.objects.get(pk=response.json()["id"])
    assert wait_for_rollback(rollback).state == "done"
    assert live.weights() == {1: 100}
    event = AuditEvent.objects.filter(action="deployment.rollback").latest("id")
    assert event.actor_label == "maintainer" and event.reason == "api"


def test_the_rollback_button_runs_on_the_worker_with_the_metrics_source_down(live, client, people):
    """The production environment's metrics source is a Prometheus that does not exist."""
    Environment.objects.filter(pk=live.production.pk).update(
        metrics_kind="prometheus", metrics_url="http://127.0.0.1:9"
    )
    services.deployment_configure(
        actor=live.maintainer, deployment=live.deployment, strategy="rolling", strategy_params={}
    )
    assert wait_for_state(live.release(2), {"promoted"}).state == "promoted"
    client.force_login(people["owner"])
    page = client.get(f"/deployments/{live.deployment.pk}/rollback/")
    assert b"v1" in page.content
    response = client.post(f"/deployments/{live.deployment.pk}/rollback/", {"reason": "button"})
    assert response.status_code == 302
    rollback = Rollback.objects.latest("id")
    assert wait_for_rollback(rollback).state == "done"
    assert live.weights() == {1: 100}
    assert AuditEvent.objects.filter(action="deployment.rollback", reason="button").exists()
