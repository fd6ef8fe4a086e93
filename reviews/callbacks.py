"""Pushing a decided outcome to the deployment's callback URL: `enqueue` (in the deciding
transaction) records one CallbackDelivery per (item, level) and enqueues the Celery task after
commit; `deliver` (in a worker) makes one signed POST and records the attempt, retried with
exponential backoff while the failure is transient.

The body is the outcome by reference (`body_of`, also what GET /api/v1/reviews/{ref}/ answers),
so it never carries the input summary. Never logs or stores the secret, the URL, a request or a
response body: errors are short reasons."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from celery import current_app
from django.conf import settings
from django.db import transaction

from alerts.notify import RetryLater
from core import clock
from identity.audit import Actor

from . import appeals, history, selectors
from .models import (
    Appeal,
    CallbackDelivery,
    CallbackStatus,
    ReviewEventKind,
    ReviewItem,
    ReviewStatus,
)

log = logging.getLogger(__name__)

__all__ = ["DELIVER_TASK", "RetryLater", "body_of", "deliver", "enqueue", "sign"]

DELIVER_TASK = "reviews.deliver_callback"
CALLBACKS = Actor.system("review-callbacks")
SIGNATURE_HEADER = "X-Modelplane-Signature"
DELIVERY_HEADER = "X-Modelplane-Delivery"


# The outcome -----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    """A time as the rest of the API writes it (DRF's form): UTC, with a Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _appeal_of(item: ReviewItem) -> Appeal | None:
    try:
        return item.appeal
    except Appeal.DoesNotExist:
        return None


def body_of(item: ReviewItem) -> dict[str, Any]:
    """An item's outcome as its caller reads it: the answer of GET /api/v1/reviews/{ref}/ and
    the body of the callback, written once here. `output` is the final output (the prediction
    when confirmed, the corrected output when overridden), null until decided; never the input
    summary. Load `model_version__model` and `appeal` with the item to spare queries."""
    decided = item.status == ReviewStatus.DECIDED
    appeal = _appeal_of(item)
    return {
        "ref": item.ref,
        "deployment": item.deployment_id,
        "model": item.model_version.model.name,
        "version": item.model_version.number,
        "track": item.track,
        "request_id": item.request_id,
        "mode": item.mode,
        "reason": item.reason,
        "status": item.status,
        "level": item.level,
        "decision": (item.decision or None) if decided else None,
        "output": item.final_output if decided else None,
        "decided_at": _iso(item.decided_at) if decided else None,
        "sla_deadline": _iso(item.sla_deadline),
        "appealable": appeals.refusal(item) is None,
        "appeal": None
        if appeal is None
        else {
            "created_at": _iso(appeal.created_at),
            "appealed_decision": appeal.appealed_decision,
            "appealed_output": appeal.appealed_output,
        },
    }


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes that are sent and signed (compact, keys sorted, UTF-8)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
    "<t>.<raw body>")>`. The time is signed with the body, so a receiver that refuses old
    timestamps refuses replays too (Stripe's scheme)."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# Enqueueing ------------------------------------------------------------------------------------


def enqueue(item: ReviewItem) -> None:
    """After a decision (in its transaction): record the delivery of the item's outcome at its
    current level and send it once the transaction commits. Nothing when the policy that
    selected the item has no callback URL. A delivery of the same level made earlier is
    refreshed (pending again, attempts counted afresh), so calling this twice sends one
    message per call, never a duplicate row."""
    policy = selectors.policy_for(item)
    if not policy.callback_url:
        return
    delivery, created = CallbackDelivery.objects.get_or_create(
        item=item,
        level=item.level,
        defaults={"url": policy.callback_url, "created_at": clock.now()},
    )
    if not created:
        delivery.url = policy.callback_url
        delivery.status = CallbackStatus.PENDING
        delivery.attempts = 0
        delivery.last_status_code = None
        delivery.last_error = ""
        delivery.delivered_at = None
        delivery.save(
            update_fields=[
                "url",
                "status",
                "attempts",
                "last_status_code",
                "last_error",
                "delivered_at",
            ]
        )
    # After commit (the worker must see the row). A broker that is down at that moment leaves
    # the delivery pending for `requeue_stale`; the decision itself still stands.
    transaction.on_commit(lambda pk=delivery.pk: _enqueue(pk), robust=True)


def _enqueue(delivery_id: int, countdown: float | None = None) -> None:
    # By name, as the engine does (deployments/engine/scheduling.py): this module never imports
    # reviews.tasks, which imports it.
    if current_app.conf.task_always_eager:
        current_app.loader.import_default_modules()
    current_app.signature(DELIVER_TASK, args=(delivery_id,)).apply_async(countdown=countdown)


def requeue_stale(*, older_than_seconds: float = 600) -> int:
    """Enqueue again the deliveries never tried long after they were recorded (their message was
    lost: broker down at commit, worker gone). `deliver` locks and checks the row, so a late twin
    never sends twice. For a periodic task."""
    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        CallbackDelivery.objects.filter(
            status=CallbackStatus.PENDING, attempts=0, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:500]
    )
    for delivery_id in stale:
        _enqueue(delivery_id)
    return len(stale)


# Delivering ------------------------------------------------------------------------------------


def max_attempts() -> int:
    return max(1, int(getattr(settings, "REVIEWS_CALLBACK_MAX_ATTEMPTS", 8)))


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling from
    REVIEWS_CALLBACK_BACKOFF_SECONDS, at most REVIEWS_CALLBACK_BACKOFF_MAX_SECONDS."""
    base = float(getattr(settings, "REVIEWS_CALLBACK_BACKOFF_SECONDS", 30))
    cap = float(getattr(settings, "REVIEWS_CALLBACK_BACKOFF_MAX_SECONDS", 3600))
    return min(base * 2 ** max(attempts - 1, 0), cap)


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status_code: int | None = None
    reason: str = ""
    permanent: bool = False  # retrying cannot help (no secret, a refusal, a bad URL)


def deliver(delivery_id: int) -> None:
    """Make one attempt of a pending delivery and record it. Raises RetryLater on a transient
    failure while attempts remain; the last failure, or one that retrying cannot mend, marks it
    failed. A delivery already delivered, failed, or being sent by another worker is left
    alone. The body is the item's outcome as it is now (a late retry tells the current truth)."""
    retry: RetryLater | None = None
    with transaction.atomic():
        delivery = (
            CallbackDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("item__model_version__model", "item__appeal")
            .filter(pk=delivery_id, status=CallbackStatus.PENDING)
            .first()
        )
        if delivery is None:
            return
        outcome = _post(delivery)
        now = clock.now()
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = outcome.status_code
        if outcome.ok:
            delivery.status = CallbackStatus.DELIVERED
            delivery.delivered_at = now
            delivery.last_error = ""
            history.event(
                delivery.item,
                ReviewEventKind.CALLBACK,
                CALLBACKS,
                {
                    "delivery": delivery.pk,
                    "level": delivery.level,
                    "attempts": delivery.attempts,
                    "status_code": outcome.status_code,
                },
            )
        elif outcome.permanent or delivery.attempts >= max_attempts():
            delivery.status = CallbackStatus.FAILED
            delivery.last_error = outcome.reason[:500]
            log.warning(
                "review callback %s of %s failed for good after %s attempt(s): %s",
                delivery.pk,
                delivery.item.ref,
                delivery.attempts,
                outcome.reason[:300],
            )
        else:
            delivery.last_error = outcome.reason[:500]
            retry = RetryLater(outcome.reason, backoff(delivery.attempts))
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "last_status_code",
                "last_error",
                "last_attempt_at",
                "delivered_at",
            ]
        )
    if retry is not None:
        raise retry  # after the commit: the attempt and its reason stay recorded


def _post(delivery: CallbackDelivery) -> _Outcome:
    item = delivery.item
    env_name = selectors.policy_for(item).callback_secret_env
    secret = os.environ.get(env_name, "") if env_name else ""
    if not secret:
        reason = (
            f"environment variable {env_name} is not set"
            if env_name
            else "the policy names no callback_secret_env"
        )
        return _Outcome(False, reason=reason, permanent=True)
    body = encode(body_of(item))
    headers = {
        "Content-Type": "application/json",
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: sign(secret, int(clock.now().timestamp()), body),
    }
    timeout = float(getattr(settings, "REVIEWS_CALLBACK_TIMEOUT_SECONDS", 5))
    try:
        # No redirects: a signed outcome goes where the policy says, or nowhere.
        response = httpx.post(
            delivery.url, content=body, headers=headers, timeout=timeout, follow_redirects=False
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return _Outcome(False, reason="the callback URL is not valid", permanent=True)
    except httpx.TimeoutException:
        return _Outcome(False, reason="timed out")
    except httpx.ConnectError as exc:
        refused = "refused" in str(exc).lower()
        return _Outcome(False, reason="connection refused" if refused else "connection failed")
    except httpx.HTTPError as exc:
        return _Outcome(False, reason=type(exc).__name__)
    status = response.status_code
    if 200 <= status < 300:
        return _Outcome(True, status)
    # A 4xx other than a timeout or throttling is a refusal (a bad signature, an unknown
    # reference): asking again cannot help. Redirects are not followed, so they fail too.
    transient = status >= 500 or status in (408, 429)
    return _Outcome(False, status, f"HTTP {status}", permanent=not transient)
