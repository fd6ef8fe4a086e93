"""Outcome callbacks (reviews.callbacks): one delivery row per (item, level), sent after commit;
a signed POST of the outcome body that a receiver verifies with the shared secret; transient
failures retried with backoff and counted, refusals and a missing secret failed at once with the
reason; a CALLBACK event in the history on success. Against a real loopback receiver, in-process
and through a real Celery worker."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from core import clock
from deployments import services as deployment_services
from reviews import callbacks
from reviews.models import CallbackDelivery, CallbackStatus, ReviewEventKind, ReviewItem
from tests.factories import SYSTEM, decided_item_of, review_deployment_of
from tests.support.celery import celery_worker
from tests.support.receiver import Receiver as BaseReceiver
from tests.support.stopped_clock import stopped_clock

SECRET_ENV = "MODELPLANE_TEST_REVIEW_CALLBACK_SECRET"
SECRET = "whsec-test-3f9a1c"
NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def Receiver() -> BaseReceiver:
    """The deployment's callback endpoint, on loopback."""
    return BaseReceiver("/hooks/reviews")


def verify(secret: str, header: str, body: bytes) -> int:
    """What a receiver does (written here independently of reviews.callbacks.sign): check the
    v1 HMAC of "<t>.<body>" and return t."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), "signature does not verify"
    return int(parts["t"])


def policy_for(url: str, secret_env: str = SECRET_ENV) -> dict[str, Any]:
    return {"all": True, "callback_url": url, "callback_secret_env": secret_env}


def delivery_of(item: ReviewItem) -> CallbackDelivery:
    return CallbackDelivery.objects.get(item=item, level=item.level)


# In-process ------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[BaseReceiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def hooked(team, receiver, monkeypatch):  # type: ignore[no-untyped-def]
    """A deployment whose policy posts outcomes to the receiver, signed with SECRET."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return review_deployment_of(team, name="loan-approver", policy=policy_for(receiver.url))


@pytest.fixture
def stopped(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, NOW):
        yield


@pytest.fixture
def item(hooked, reviewer) -> ReviewItem:  # type: ignore[no-untyped-def]
    """An overridden level-1 item of the hooked deployment, with its delivery recorded."""
    decided = decided_item_of(
        hooked,
        reviewer,
        decision="override",
        output={"label": "approved"},
        input_summary={"surname": "Lovelace-unique-marker"},
    )
    callbacks.enqueue(decided)
    return decided


def test_sign_is_hmac_sha256_of_the_time_and_the_raw_body():
    body = b'{"ref":"rv_x"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert callbacks.sign("s3cret", 1_700_000_000, body) == f"t=1700000000,v1={expected}"


@pytest.mark.django_db
def test_enqueue_records_one_delivery_and_sends_it_after_commit(
    hooked, reviewer, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[int] = []
    monkeypatch.setattr(callbacks, "_enqueue", sent.append)
    decided = decided_item_of(hooked, reviewer)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        callbacks.enqueue(decided)
        assert sent == []  # not before the commit: the worker must see the row
    delivery = delivery_of(decided)
    assert (delivery.level, delivery.url, delivery.status, delivery.attempts) == (
        1,
        hooked.config.review_policy["callback_url"],
        CallbackStatus.PENDING,
        0,
    )
    for callback in pending:
        callback()
    assert sent == [delivery.pk]


@pytest.mark.django_db
def test_enqueue_again_refreshes_the_same_row(hooked, reviewer, monkeypatch):
    monkeypatch.setattr(callbacks, "_enqueue", lambda pk: None)
    decided = decided_item_of(hooked, reviewer)
    callbacks.enqueue(decided)
    CallbackDelivery.objects.filter(item=decided).update(
        status=CallbackStatus.FAILED, attempts=8, last_error="HTTP 503"
    )
    callbacks.enqueue(decided)
    delivery = CallbackDelivery.objects.get(item=decided)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 0, "")


@pytest.mark.django_db
def test_enqueue_does_nothing_without_a_callback_url(
    deployment, reviewer, django_capture_on_commit_callbacks
):
    decided = decided_item_of(deployment, reviewer)
    with django_capture_on_commit_callbacks() as pending:
        callbacks.enqueue(decided)
    assert pending == [] and not CallbackDelivery.objects.exists()


@pytest.mark.django_db
def test_a_delivered_outcome_is_signed_and_recorded(item, receiver, stopped):
    callbacks.deliver(delivery_of(item).pk)

    [call] = receiver.calls
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Modelplane-Delivery"] == str(delivery_of(item).pk)
    timestamp = verify(SECRET, call.headers["X-Modelplane-Signature"], call.body)
    assert timestamp == int(NOW.timestamp())
    item.refresh_from_db()
    assert call.json == callbacks.body_of(item)
    assert (call.json["decision"], call.json["output"]) == ("override", {"label": "approved"})
    assert b"Lovelace-unique-marker" not in call.body and b"input_summary" not in call.body

    delivery = delivery_of(item)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert (delivery.delivered_at, delivery.last_attempt_at, delivery.last_error) == (NOW, NOW, "")
    event = item.events.get(kind=ReviewEventKind.CALLBACK)
    assert event.actor_label == "system:review-callbacks"
    assert event.detail == {
        "delivery": delivery.pk,
        "level": 1,
        "attempts": 1,
        "status_code": 200,
    }

    callbacks.deliver(delivery.pk)  # a redelivered task: already delivered, nothing more
    assert len(receiver.calls) == 1


@pytest.mark.django_db
def test_a_wrong_secret_does_not_verify(item, receiver):
    callbacks.deliver(delivery_of(item).pk)
    [call] = receiver.calls
    with pytest.raises(AssertionError, match="does not verify"):
        verify("another-secret", call.headers["X-Modelplane-Signature"], call.body)


@pytest.mark.django_db
def test_a_5xx_is_retried_with_backoff_and_counted(item, receiver, settings):
    settings.REVIEWS_CALLBACK_BACKOFF_SECONDS = 2
    receiver.reset(500, 503, 200)
    delivery = delivery_of(item)
    for attempt, countdown, answer in ((1, 2.0, 500), (2, 4.0, 503)):
        with pytest.raises(callbacks.RetryLater) as retry:
            callbacks.deliver(delivery.pk)
        assert (str(retry.value), retry.value.countdown) == (f"HTTP {answer}", countdown)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            attempt,
            answer,
        )
        assert delivery.last_error == f"HTTP {answer}"
    callbacks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert len(receiver.calls) == 3
    assert item.events.filter(kind=ReviewEventKind.CALLBACK).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", [408, 429])
def test_a_timeout_or_throttling_answer_is_retried(item, receiver, status):
    receiver.reset(status)
    with pytest.raises(callbacks.RetryLater):
        callbacks.deliver(delivery_of(item).pk)
    assert delivery_of(item).last_status_code == status


@pytest.mark.django_db
@pytest.mark.parametrize("status", [400, 401, 404, 302])
def test_a_refusal_fails_at_once(item, receiver, status):
    receiver.reset(status)
    callbacks.deliver(delivery_of(item).pk)  # no RetryLater: asking again cannot help
    delivery = delivery_of(item)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        "failed",
        1,
        status,
    )
    assert delivery.last_error == f"HTTP {status}"
    assert not item.events.filter(kind=ReviewEventKind.CALLBACK).exists()


@pytest.mark.django_db
def test_the_last_attempt_fails_the_delivery(item, receiver, settings):
    settings.REVIEWS_CALLBACK_MAX_ATTEMPTS = 3
    receiver.reset(*[502] * 10)
    delivery = delivery_of(item)
    for _ in range(2):
        with pytest.raises(callbacks.RetryLater):
            callbacks.deliver(delivery.pk)
    callbacks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 3, "HTTP 502")
    callbacks.deliver(delivery.pk)
    assert len(receiver.calls) == 3


@pytest.mark.django_db
def test_a_missing_secret_fails_at_once_with_the_reason(item, receiver, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    callbacks.deliver(delivery_of(item).pk)
    delivery = delivery_of(item)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        f"environment variable {SECRET_ENV} is not set",
    )
    assert receiver.calls == []  # never sent unsigned


@pytest.mark.django_db
def test_a_closed_port_is_retried(team, reviewer, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv(SECRET_ENV, SECRET)
    deployment = review_deployment_of(
        team, name="nowhere", policy=policy_for(f"http://127.0.0.1:{closed}/hooks")
    )
    decided = decided_item_of(deployment, reviewer)
    monkeypatch.setattr(callbacks, "_enqueue", lambda pk: None)
    callbacks.enqueue(decided)
    with pytest.raises(callbacks.RetryLater):
        callbacks.deliver(delivery_of(decided).pk)
    assert delivery_of(decided).last_error == "connection refused"


@pytest.mark.django_db
def test_the_url_is_the_one_of_the_policy_that_selected_the_item(
    hooked, reviewer, receiver, monkeypatch
):
    """Policies are versioned: an item keeps the callback of the config it was submitted under."""
    monkeypatch.setattr(callbacks, "_enqueue", lambda pk: None)
    decided = decided_item_of(hooked, reviewer)
    deployment_services.deployment_configure(
        actor=SYSTEM, deployment=hooked, review_policy=policy_for("https://elsewhere.example/h")
    )
    callbacks.enqueue(decided)
    assert delivery_of(decided).url == receiver.url


@pytest.mark.django_db
def test_a_lost_message_is_enqueued_again(item, monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(callbacks, "_enqueue", sent.append)
    assert callbacks.requeue_stale() == 0
    clock.advance(11 * 60)
    assert callbacks.requeue_stale() == 1
    assert sent == [delivery_of(item).pk]


# A real Celery worker ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker_receiver() -> Iterator[BaseReceiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="module")
def worker_log(  # type: ignore[no-untyped-def]
    django_db_setup, django_db_blocker, worker_receiver, tmp_path_factory
) -> Iterator[Path]:
    if not django_settings.REDIS_AVAILABLE:
        pytest.skip("no Redis here (CI fails instead)")
    log = tmp_path_factory.mktemp("review-callbacks-worker") / "worker.log"
    with (
        django_db_blocker.unblock(),
        celery_worker(
            log,
            extra_env={SECRET_ENV: SECRET, "REVIEWS_CALLBACK_BACKOFF_SECONDS": "0.2"},
        ),
    ):
        yield log


def wait_until_settled(delivery: CallbackDelivery, timeout: float = 30) -> CallbackDelivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status != CallbackStatus.PENDING:
            return delivery
        time.sleep(0.1)
    return delivery


@pytest.mark.slow
def test_a_worker_retries_a_failing_receiver_until_it_takes_the_signed_outcome(
    transactional_db, team, reviewer, worker_receiver, worker_log
):
    clock.reset()  # the worker reads the wall clock
    worker_receiver.reset(500, 200)
    deployment = review_deployment_of(
        team, name="loan-approver", policy=policy_for(worker_receiver.url)
    )
    decided = decided_item_of(
        deployment, reviewer, decision="override", output={"label": "approved"}
    )
    with transaction.atomic():
        callbacks.enqueue(decided)  # the task is sent as this commits
    delivery = wait_until_settled(delivery_of(decided))

    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 200)
    assert len(worker_receiver.calls) == 2
    last = worker_receiver.calls[-1]
    sent_at = verify(SECRET, last.headers["X-Modelplane-Signature"], last.body)
    assert abs(sent_at - time.time()) < 60
    assert last.json["ref"] == decided.ref and last.json["output"] == {"label": "approved"}
    assert decided.events.filter(kind=ReviewEventKind.CALLBACK).count() == 1
    log = worker_log.read_text()
    assert "Retry in 0.2s: RetryLater('HTTP 500')" in log
    assert SECRET not in log


@pytest.mark.slow
def test_a_worker_without_the_secret_fails_the_delivery_with_the_reason(
    transactional_db, team, reviewer, worker_receiver, worker_log
):
    clock.reset()
    worker_receiver.reset()
    unset = "MODELPLANE_TEST_REVIEW_SECRET_NOT_SET"
    deployment = review_deployment_of(
        team, name="unsigned", policy=policy_for(worker_receiver.url, secret_env=unset)
    )
    decided = decided_item_of(deployment, reviewer)
    with transaction.atomic():
        callbacks.enqueue(decided)
    delivery = wait_until_settled(delivery_of(decided))
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        f"environment variable {unset} is not set",
    )
    assert worker_receiver.calls == []
