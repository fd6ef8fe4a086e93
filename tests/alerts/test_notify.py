"""Notifications: one delivery per alert state change per recipient, e-mails that say what and
where, webhooks (Slack-compatible) to a loopback server that fails and recovers, retried with
backoff in-process and by a real Celery worker, and no webhook URL in any log."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from alerts import lifecycle, notify
from alerts.models import (
    Alert,
    AlertEventKind,
    AlertSource,
    Delivery,
    DeliveryStatus,
    NotificationChannel,
)
from core import clock
from identity.audit import Actor
from tests.factories import (
    SYSTEM,
    MembershipFactory,
    RegisteredModelFactory,
    UserFactory,
    channel_of,
    deployment_of,
    environment_of,
    layer_of,
    policy_of,
    schedule_of,
)
from tests.support.celery import celery_worker
from tests.support.receiver import Receiver
from tests.support.stopped_clock import stopped_clock

HOOK_ENV = "MODELPLANE_TEST_ALERT_HOOK"
SECRET = "T0001/B0001/s3cr3t-hook-token"


def Hook() -> Receiver:
    """The team's webhook, on loopback: its URL carries the secret, as a Slack hook's does."""
    return Receiver(f"/services/{SECRET}")


def fire(team, fingerprint: str = "slo_burn:1:stable", **fields: Any) -> Alert:  # type: ignore[no-untyped-def]
    return lifecycle.fire(
        lifecycle.Signal(
            team=team,
            source=AlertSource.RULE,
            fingerprint=fingerprint,
            rule="slo_burn",
            title=fields.pop("title", "fraud: error budget burning fast"),
            severity="critical",
            summary=fields.pop("summary", "99.9% SLO: 14x burn over 1 h and 5 min"),
            **fields,
        ),
        actor=SYSTEM,
    ).alert


def deliveries(alert: Alert) -> list[tuple[str, str]]:
    return sorted(Delivery.objects.filter(alert=alert).values_list("recipient", "change"))


@pytest.fixture
def on_call(team, people):  # type: ignore[no-untyped-def]
    """alice is on call (the policy's only step) and has an e-mail address."""
    alice = UserFactory(username="alice")
    MembershipFactory(team=team, user=alice, role="viewer")
    schedule = schedule_of(team)
    layer_of(schedule, [alice], rotation_start=datetime(2025, 1, 1, tzinfo=UTC))
    policy_of(team, [("schedule", schedule, 10)])
    return alice


# In-process ----------------------------------------------------------------------------------


@pytest.fixture
def stopped(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, datetime(2025, 6, 2, 10, 0, tzinfo=UTC)):
        yield


@pytest.fixture
def hook(monkeypatch) -> Iterator[Receiver]:  # type: ignore[no-untyped-def]
    with Hook() as server:
        monkeypatch.setenv(HOOK_ENV, server.url)
        yield server


@pytest.fixture
def channel(team) -> NotificationChannel:  # type: ignore[no-untyped-def]
    return channel_of(team, name="ops-slack", url_env=HOOK_ENV)


def test_each_state_change_is_announced_once_per_recipient(
    team, on_call, channel, stopped, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        alert = fire(team)
        for _ in range(5):
            assert fire(team).pk == alert.pk  # refreshed: the same alert, no new change
        alert.refresh_from_db()
        lifecycle.acknowledge(actor=Actor.from_principal(on_call), alert=alert)
        notify.announce(alert, "acknowledged:0")  # a second announce of one change: nothing
    alice, hook = f"user:{on_call.pk}", f"channel:{channel.pk}"
    assert deliveries(alert) == sorted(
        [(alice, "fired"), (hook, "fired"), (alice, "acknowledged:0"), (hook, "acknowledged:0")]
    )
    assert len(queued) == 4  # one task per delivery, after commit


def test_an_email_says_what_where_who_and_links_the_alert(team, on_call, stopped, mailoutbox):
    model = RegisteredModelFactory(team=team, name="fraud-detector")
    deployment = deployment_of(model, environment_of("production"))
    alert = fire(team, deployment=deployment, model=model)
    delivery = Delivery.objects.get(alert=alert, user=on_call)
    notify.deliver(delivery.pk)

    [mail] = mailoutbox
    assert mail.to == ["alice@example.com"]
    assert mail.subject == "[modelplane] critical fraud: error budget burning fast — firing"
    assert "99.9% SLO: 14x burn over 1 h and 5 min" in mail.body
    assert f"Deployment: {deployment.name} in production" in mail.body
    assert "Assignee: alice" in mail.body
    assert f"{django_settings.PORTAL_URL}/alerts/{alert.pk}/" in mail.body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.sent_at) == ("sent", 1, clock.now())
    notified = alert.events.get(kind=AlertEventKind.NOTIFIED)
    assert notified.text == "e-mail to alice"

    notify.deliver(delivery.pk)  # a redelivered task: already sent, nothing more
    assert len(mailoutbox) == 1


def test_a_silenced_alert_tells_nobody_until_it_resolves(team, on_call, channel, stopped):
    alert = fire(team)
    owner = Actor.from_principal(team.memberships.get(role="owner").user)
    lifecycle.silence(actor=owner, alert=alert, until=clock.now() + timedelta(hours=1))
    lifecycle.reassign(actor=owner, alert=alert, username="owner", reason="I'll take it")
    assert {change for _, change in deliveries(alert)} == {"fired"}
    lifecycle.resolve(actor=owner, alert=alert, reason="fixed")
    assert {change for _, change in deliveries(alert)} == {"fired", "resolved:0"}


def test_a_webhook_is_retried_with_backoff_until_it_is_taken(
    team, on_call, channel, hook, stopped, settings, caplog
):
    settings.ALERTS_DELIVERY_BACKOFF_SECONDS = 2
    caplog.set_level(logging.DEBUG)
    hook.reset(500, 500, 200)
    alert = fire(team)
    delivery = Delivery.objects.get(alert=alert, channel=channel)

    for attempt, countdown in ((1, 2.0), (2, 4.0)):
        with pytest.raises(notify.RetryLater) as retry:
            notify.deliver(delivery.pk)
        assert (str(retry.value), retry.value.countdown) == ("HTTP 500", countdown)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (
            "retrying",
            attempt,
            "HTTP 500",
        )
    notify.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert alert.events.get(kind=AlertEventKind.NOTIFIED).text == "webhook ops-slack"

    assert len(hook.received) == 3
    body = hook.received[-1]
    url = f"{django_settings.PORTAL_URL}/alerts/{alert.pk}/"
    assert body["change"] == "fired"
    assert body["alert"] == {
        "id": alert.pk,
        "status": "firing",
        "severity": "critical",
        "title": "fraud: error budget burning fast",
        "team": "fraud",
        "deployment": None,
        "assignee": "alice",
        "url": url,
    }
    assert body["text"] == (
        "[critical] fraud: error budget burning fast — firing — assigned to alice "
        f"<{url}|alert #{alert.pk}>"
    )
    assert SECRET not in caplog.text and hook.url not in caplog.text


def test_a_webhook_that_keeps_failing_is_marked_failed_after_the_last_attempt(
    team, on_call, channel, hook, stopped, caplog
):
    hook.reset(*[503] * 10)
    alert = fire(team)
    delivery = Delivery.objects.get(alert=alert, channel=channel)
    for _ in range(notify.MAX_ATTEMPTS - 1):
        with pytest.raises(notify.RetryLater):
            notify.deliver(delivery.pk)
    notify.deliver(delivery.pk)  # the last: no retry asked
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 6, "HTTP 503")
    assert len(hook.received) == 6
    failed = alert.events.get(kind=AlertEventKind.NOTIFIED)
    assert failed.text == "webhook ops-slack failed after 6 attempts: HTTP 503"
    assert "HTTP 503" in caplog.text and SECRET not in caplog.text
    notify.deliver(delivery.pk)
    assert len(hook.received) == 6


def test_a_missing_environment_variable_fails_without_retry(
    team, on_call, channel, stopped, monkeypatch
):
    monkeypatch.delenv(HOOK_ENV, raising=False)
    alert = fire(team)
    delivery = Delivery.objects.get(alert=alert, channel=channel)
    notify.deliver(delivery.pk)  # no RetryLater: retrying cannot help
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        f"environment variable {HOOK_ENV} is not set",
    )


def test_a_refusal_fails_at_once_and_a_closed_port_is_retried(
    team, on_call, channel, hook, stopped, monkeypatch
):
    hook.reset(404)
    first = fire(team, "a:1")
    refused = Delivery.objects.get(alert=first, channel=channel)
    notify.deliver(refused.pk)
    refused.refresh_from_db()
    assert (refused.status, refused.last_error) == ("failed", "HTTP 404")

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv(HOOK_ENV, f"http://127.0.0.1:{closed}/services/{SECRET}")
    second = fire(team, "b:1")
    unreachable = Delivery.objects.get(alert=second, channel=channel)
    with pytest.raises(notify.RetryLater):
        notify.deliver(unreachable.pk)
    unreachable.refresh_from_db()
    assert (unreachable.status, unreachable.last_error) == ("retrying", "connection refused")


def test_a_lost_message_is_enqueued_again_by_the_sweep(
    team, on_call, stopped, django_capture_on_commit_callbacks, monkeypatch
):
    sent: list[int] = []
    monkeypatch.setattr(notify, "_enqueue", sent.append)
    alert = fire(team)
    assert notify.requeue_stale() == 0
    clock.advance(11 * 60)
    assert notify.requeue_stale() == 1
    assert sent == [Delivery.objects.get(alert=alert).pk]


# A real Celery worker ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_hook() -> Iterator[Receiver]:
    with Hook() as server:
        yield server


@pytest.fixture(scope="module")
def worker_log(django_db_setup, django_db_blocker, worker_hook, tmp_path_factory) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    if not django_settings.REDIS_AVAILABLE:
        pytest.skip("no Redis here (CI fails instead)")
    log = tmp_path_factory.mktemp("notify-worker") / "worker.log"
    with (
        django_db_blocker.unblock(),
        celery_worker(
            log,
            extra_env={
                HOOK_ENV: worker_hook.url,
                "ALERTS_DELIVERY_BACKOFF_SECONDS": "0.2",
                "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            },
        ),
    ):
        yield log


@pytest.mark.slow
def test_a_worker_retries_a_failing_webhook_until_it_is_taken(
    transactional_db, team, on_call, worker_hook, worker_log
):
    clock.reset()  # the worker reads the wall clock
    channel = channel_of(team, name="ops-slack", url_env=HOOK_ENV)
    worker_hook.reset(500, 500, 200)
    with transaction.atomic():
        alert = fire(team)  # the deliveries are enqueued as this commits
    delivery = Delivery.objects.get(alert=alert, channel=channel)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED):
            break
        time.sleep(0.1)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 3, "")
    assert [body["change"] for body in worker_hook.received] == ["fired"] * 3
    email = Delivery.objects.get(alert=alert, user=on_call)
    assert (email.status, email.attempts) == ("sent", 1)
    log = worker_log.read_text()
    assert "Retry in 0.2s: RetryLater('HTTP 500')" in log
    assert "Retry in 0.4s: RetryLater('HTTP 500')" in log
    assert SECRET not in log and worker_hook.url not in log
