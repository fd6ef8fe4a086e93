"""Notifications of alert changes: whom to tell (`announce`, in the caller's transaction) and
the telling (`deliver`, in a Celery worker, retried with backoff). One Delivery row per (alert,
change, recipient) is the promise of at most one message per state change per recipient.
Never logs or stores a webhook URL, a request body or a header: errors are short reasons."""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from core import clock
from identity.audit import Actor

from . import targets
from .models import (
    Alert,
    AlertEventKind,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    NotificationChannel,
)
from .timeline import event

log = logging.getLogger(__name__)

NOTIFY = Actor.system("notify")
DELIVER_TASK = "alerts.deliver"
MAX_ATTEMPTS = 6  # the first try and five retries
# A pending delivery this old lost its message (broker down at commit, worker lost): send again.
STALE_AFTER = timedelta(minutes=10)


class RetryLater(Exception):
    """A transient failure: the task retries after `countdown` seconds. Its text is the short
    reason only (Celery logs it)."""

    def __init__(self, reason: str, countdown: float) -> None:
        super().__init__(reason)
        self.countdown = countdown


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling from
    ALERTS_DELIVERY_BACKOFF_SECONDS, at most ALERTS_DELIVERY_BACKOFF_MAX_SECONDS."""
    base = float(getattr(settings, "ALERTS_DELIVERY_BACKOFF_SECONDS", 30))
    cap = float(getattr(settings, "ALERTS_DELIVERY_BACKOFF_MAX_SECONDS", 1800))
    return min(base * 2 ** max(attempts - 1, 0), cap)


def announce(alert: Alert, change: str, *, people: Sequence[Any] | None = None) -> None:
    """Queue one delivery per recipient of `change`: the assignee and the people of the
    current step (escalation passes those it just reached) by e-mail, and the team's active
    webhooks. Nothing while the alert is silenced, except that it resolved. Announcing the
    same change again sends nothing new."""
    now = clock.now()
    if alert.is_silenced(now) and not change.startswith("resolved"):
        return
    if people is None:
        recipients = targets.current_people(alert, now)
    else:
        recipients = targets.unique([alert.assignee, *people])
    queued: list[int] = []
    for person in recipients:
        if person.email:
            queued += _record(alert, change, f"user:{person.pk}", ChannelKind.EMAIL, user=person)
    for channel in NotificationChannel.objects.filter(team_id=alert.team_id, is_active=True):
        queued += _record(
            alert, change, f"channel:{channel.pk}", ChannelKind.WEBHOOK, channel=channel
        )
    for delivery_id in queued:
        # After commit (the worker must see the row); a broker that is down then leaves the
        # delivery pending for `requeue_stale`, and the caller's request still succeeds.
        transaction.on_commit(lambda pk=delivery_id: _enqueue(pk), robust=True)


def _record(alert: Alert, change: str, recipient: str, kind: str, **who: Any) -> list[int]:
    """The delivery's id when this change is new to this recipient, else nothing."""
    delivery, created = Delivery.objects.get_or_create(
        alert=alert,
        change=change[:60],
        recipient=recipient,
        defaults={"kind": kind, "created_at": clock.now(), **who},
    )
    return [delivery.pk] if created else []


def requeue_stale(now: datetime | None = None) -> int:
    """Enqueue again the deliveries still pending long after they were queued (their message
    was lost). `deliver` locks and checks the row, so a late twin never sends twice."""
    cutoff = (now or clock.now()) - STALE_AFTER
    stale = list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, attempts=0, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:500]
    )
    for delivery_id in stale:
        _enqueue(delivery_id)
    return len(stale)


def _enqueue(delivery_id: int) -> None:
    # By name, as the engine does (deployments/engine/scheduling.py): this module never
    # imports the tasks module that imports it.
    if current_app.conf.task_always_eager:
        current_app.loader.import_default_modules()
    current_app.signature(DELIVER_TASK, args=(delivery_id,)).apply_async()


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    label: str  # "e-mail to bob", "webhook ops-slack"
    reason: str = ""
    permanent: bool = False  # retrying cannot help (no address, no URL, HTTP 404)


def deliver(delivery_id: int) -> None:
    """Send one delivery and record the outcome. Raises RetryLater on a transient failure while
    attempts remain; the last failure, or one that retrying cannot mend, marks it failed. A
    delivery already sent, failed, or being sent by another worker is left alone."""
    retry: RetryLater | None = None
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related(
                "alert__team",
                "alert__deployment__environment",
                "alert__assignee",
                "user",
                "channel",
            )
            .filter(pk=delivery_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
            .first()
        )
        if delivery is None:
            return
        outcome = _send(delivery)
        delivery.attempts += 1
        if outcome.ok:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = clock.now()
            delivery.last_error = ""
            event(
                delivery.alert,
                AlertEventKind.NOTIFIED,
                NOTIFY,
                outcome.label,
                {"delivery": delivery.pk, "change": delivery.change, "attempts": delivery.attempts},
            )
        elif outcome.permanent or delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = outcome.reason[:300]
            event(
                delivery.alert,
                AlertEventKind.NOTIFIED,
                NOTIFY,
                f"{outcome.label} failed after {delivery.attempts} "
                f"attempt{'s' if delivery.attempts != 1 else ''}: {outcome.reason}",
                {"delivery": delivery.pk, "change": delivery.change, "failed": True},
            )
            log.warning("alert delivery %s failed for good: %s", delivery.pk, outcome.reason[:300])
        else:
            delivery.status = DeliveryStatus.RETRYING
            delivery.last_error = outcome.reason[:300]
            retry = RetryLater(outcome.reason, backoff(delivery.attempts))
        delivery.save(update_fields=["status", "attempts", "last_error", "sent_at"])
    if retry is not None:
        raise retry  # after the commit: the attempt and its reason stay recorded


def _send(delivery: Delivery) -> _Outcome:
    if delivery.kind == ChannelKind.EMAIL:
        return _send_email(delivery)
    return _send_webhook(delivery)


def _send_email(delivery: Delivery) -> _Outcome:
    user = delivery.user
    if user is None:
        return _Outcome(False, "e-mail", "the person was removed", permanent=True)
    label = f"e-mail to {user.get_username()}"
    if not user.email:
        return _Outcome(False, label, "no e-mail address", permanent=True)
    alert = delivery.alert
    try:
        send_mail(
            subject=_one_line(f"[modelplane] {alert.severity} {alert.title} — {alert.status}")[
                :200
            ],
            message=_email_body(alert, delivery.change),
            from_email=None,
            recipient_list=[user.email],
            fail_silently=False,
        )
    except (smtplib.SMTPException, OSError) as exc:
        return _Outcome(False, label, f"SMTP: {type(exc).__name__}")
    return _Outcome(True, label)


def _send_webhook(delivery: Delivery) -> _Outcome:
    channel = delivery.channel
    if channel is None:
        return _Outcome(False, "webhook", "the channel was removed", permanent=True)
    label = f"webhook {channel.name}"
    if not channel.is_active:
        return _Outcome(False, label, "the channel is switched off", permanent=True)
    url = os.environ.get(channel.url_env, "")
    if not url:
        return _Outcome(
            False, label, f"environment variable {channel.url_env} is not set", permanent=True
        )
    timeout = float(getattr(settings, "ALERTS_WEBHOOK_TIMEOUT_SECONDS", 10))
    try:
        response = httpx.post(url, json=webhook_payload(delivery), timeout=timeout)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        return _Outcome(False, label, f"the URL in {channel.url_env} is not valid", permanent=True)
    except httpx.TimeoutException:
        return _Outcome(False, label, "timed out")
    except httpx.ConnectError as exc:
        refused = "refused" in str(exc).lower()
        return _Outcome(False, label, "connection refused" if refused else "connection failed")
    except httpx.HTTPError as exc:
        return _Outcome(False, label, type(exc).__name__)
    status = response.status_code
    if 200 <= status < 300:
        return _Outcome(True, label)
    # A 4xx other than a timeout or throttling is a refusal (a revoked Slack hook answers 404,
    # a bad payload 400): asking again cannot help.
    transient = status >= 500 or status in (408, 429)
    return _Outcome(False, label, f"HTTP {status}", permanent=not transient)


def alert_url(alert: Alert) -> str:
    return f"{settings.PORTAL_URL}/alerts/{alert.pk}/"


def webhook_payload(delivery: Delivery) -> dict[str, Any]:
    """Slack-compatible (`text`) and machine-readable (`alert`, `change`) at once."""
    alert = delivery.alert
    url = alert_url(alert)
    assignee = alert.assignee.get_username() if alert.assignee else None
    owner = f" — assigned to {assignee}" if assignee else " — unassigned"
    title = _slack(_one_line(alert.title))
    text = f"[{alert.severity}] {title} — {alert.status}{owner} <{url}|alert #{alert.pk}>"
    return {
        "text": text,
        "alert": {
            "id": alert.pk,
            "status": alert.status,
            "severity": alert.severity,
            "title": alert.title,
            "team": alert.team.slug,
            "deployment": alert.deployment.name if alert.deployment else None,
            "assignee": assignee,
            "url": url,
        },
        "change": delivery.change,
    }


def _email_body(alert: Alert, change: str) -> str:
    deployment = (
        f"{alert.deployment.name} in {alert.deployment.environment.name}"
        if alert.deployment
        else "none"
    )
    assignee = alert.assignee.get_username() if alert.assignee else "nobody"
    lines = [
        alert.title,
        "",
        f"Status: {alert.status} ({change})",
        f"Severity: {alert.severity}",
        f"Team: {alert.team.slug}",
        f"Deployment: {deployment}",
        f"Assignee: {assignee}",
    ]
    if alert.summary:
        lines += ["", alert.summary]
    lines += ["", f"Acknowledge, roll back or read the timeline: {alert_url(alert)}"]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _slack(text: str) -> str:
    # Slack's three control characters in message text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
