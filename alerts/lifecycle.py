"""The life of an alert, in one place for every source (the control plane's rules, Alertmanager,
a person): fire or refresh by identity, reopen within the window, acknowledge, silence, reassign,
note, resolve. Each change is one timeline event, routed through escalation (who owns it) and
notifications (who hears of it). Callers hold the transaction; nothing here commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.models import Team
from identity.permissions import Action, require

from . import escalation, incidents, notify
from .models import OPEN_ALERT_STATES, Alert, AlertEvent, AlertEventKind, AlertStatus
from .timeline import event

# The longest silence a person may set: longer than this is a resolve, or a rule to change.
MAX_SILENCE = timedelta(days=7)


def reopen_window() -> timedelta:
    """A fingerprint that fires again within this time of resolving reopens its alert (the same
    alert and timeline, routed afresh to whoever is on call at that instant); later, it opens a
    new alert. Setting ALERTS_REOPEN_WINDOW_SECONDS."""
    return timedelta(seconds=float(getattr(settings, "ALERTS_REOPEN_WINDOW_SECONDS", 3600)))


@dataclass(frozen=True)
class Signal:
    """One observation that a condition holds, from any source."""

    team: Team
    source: str
    fingerprint: str
    rule: str
    title: str
    severity: str
    summary: str = ""
    track: str = ""
    model: Any = None
    deployment: Any = None
    release: Any = None
    labels: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    generator_url: str = ""
    needs_triage: bool = False
    starts_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    alert: Alert
    change: str  # "fired", "reopened" or "refreshed"


def _fields_of(signal: Signal) -> dict[str, Any]:
    return {
        "rule": signal.rule[:100],
        "title": signal.title[:300],
        "severity": signal.severity,
        "summary": signal.summary,
        "track": signal.track,
        "model": signal.model,
        "deployment": signal.deployment,
        "release": signal.release,
        "labels": signal.labels,
        "annotations": signal.annotations,
        "evidence": signal.evidence,
        "generator_url": signal.generator_url[:1000],
        "needs_triage": signal.needs_triage,
    }


def fire(signal: Signal, *, actor: Actor) -> Outcome:
    """The condition holds: refresh its open alert, reopen its recent one, or open a new one.
    Safe under concurrency: two deliveries of one fingerprint end as one open alert."""
    now = clock.now()
    open_alert = (
        Alert.objects.select_for_update()
        .filter(team=signal.team, source=signal.source, fingerprint=signal.fingerprint)
        .filter(status__in=OPEN_ALERT_STATES)
        .first()
    )
    if open_alert is not None:
        for name, value in _fields_of(signal).items():
            if name not in {"model", "deployment", "release"} or value is not None:
                setattr(open_alert, name, value)
        open_alert.last_seen_at = now
        open_alert.save()
        return Outcome(open_alert, "refreshed")
    recent = (
        Alert.objects.select_for_update()
        .filter(team=signal.team, source=signal.source, fingerprint=signal.fingerprint)
        .filter(status=AlertStatus.RESOLVED, resolved_at__gte=now - reopen_window())
        .order_by("-resolved_at", "-id")
        .first()
    )
    if recent is not None:
        for name, value in _fields_of(signal).items():
            setattr(recent, name, value)
        recent.status = AlertStatus.FIRING
        recent.resolved_at = None
        recent.acknowledged_at = None
        recent.acknowledged_by = None
        recent.silenced_until = None
        recent.reopened_count += 1
        recent.last_seen_at = now
        recent.save()
        event(recent, AlertEventKind.REOPENED, actor, f"fired again: {signal.title}")
        escalation.begin(recent, change=f"reopened:{recent.reopened_count}")
        return Outcome(recent, "reopened")
    try:
        with transaction.atomic():  # a savepoint: a racing twin leaves the request usable
            alert = Alert.objects.create(
                team=signal.team,
                source=signal.source,
                fingerprint=signal.fingerprint,
                starts_at=signal.starts_at or now,
                last_seen_at=now,
                created_at=now,
                **_fields_of(signal),
            )
    except IntegrityError:
        twin = Alert.objects.select_for_update().get(
            team=signal.team,
            source=signal.source,
            fingerprint=signal.fingerprint,
            status__in=OPEN_ALERT_STATES,
        )
        return Outcome(twin, "refreshed")
    event(alert, AlertEventKind.FIRED, actor, signal.summary or signal.title)
    escalation.begin(alert, change="fired")
    incidents.open_for_alert_automatically(alert)  # ALERTS_AUTO_INCIDENT_SEVERITY; off by default
    return Outcome(alert, "fired")


def clear(
    *,
    team: Team,
    source: str,
    fingerprint: str,
    actor: Actor,
    reason: str,
    at: datetime | None = None,
) -> Alert | None:
    """The condition no longer holds: resolve its open alert, if any."""
    alert = (
        Alert.objects.select_for_update()
        .filter(team=team, source=source, fingerprint=fingerprint, status__in=OPEN_ALERT_STATES)
        .first()
    )
    if alert is None:
        return None
    _resolve(alert, actor, reason, at)
    return alert


def _resolve(alert: Alert, actor: Actor, reason: str, at: datetime | None = None) -> None:
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = at or clock.now()
    alert.next_escalation_at = None
    alert.save()
    event(alert, AlertEventKind.RESOLVED, actor, reason)
    notify.announce(alert, f"resolved:{alert.reopened_count}")


def _locked(alert: Alert) -> Alert:
    return Alert.objects.select_for_update(of=("self",)).get(pk=alert.pk)


def _check_open(alert: Alert, verb: str) -> None:
    if not alert.is_open:
        raise Conflict(f"the alert is resolved: it cannot be {verb}", field="status")


def acknowledge(*, actor: Actor, alert: Alert, note: str = "") -> Alert:
    """I have it: escalation stops; acknowledging twice changes nothing."""
    require(actor.principal, Action.ALERT_RESPOND, alert)
    alert = _locked(alert)
    _check_open(alert, "acknowledged")
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return alert
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = clock.now()
    alert.acknowledged_by = actor.user
    if alert.assignee_id is None and actor.user is not None:
        alert.assignee = actor.user
    alert.next_escalation_at = None
    alert.save()
    event(alert, AlertEventKind.ACKNOWLEDGED, actor, note)
    audit.record(actor=actor, action="alert.acknowledge", target=alert, reason=note)
    notify.announce(alert, f"acknowledged:{alert.reopened_count}")
    return alert


def resolve(*, actor: Actor, alert: Alert, reason: str = "") -> Alert:
    """A person resolves it (a rule or Alertmanager resolves by `clear`)."""
    require(actor.principal, Action.ALERT_RESPOND, alert)
    alert = _locked(alert)
    _check_open(alert, "resolved")
    _resolve(alert, actor, reason or "resolved by hand")
    audit.record(actor=actor, action="alert.resolve", target=alert, reason=reason)
    return alert


def silence(*, actor: Actor, alert: Alert, until: datetime, reason: str = "") -> Alert:
    """No escalation and no notification until `until`; then escalation goes on."""
    require(actor.principal, Action.ALERT_RESPOND, alert)
    now = clock.now()
    if until <= now:
        raise ValidationFailed("must be in the future", field="until")
    if until - now > MAX_SILENCE:
        raise ValidationFailed("a silence lasts at most 7 days", field="until")
    alert = _locked(alert)
    _check_open(alert, "silenced")
    alert.silenced_until = until
    if alert.next_escalation_at is not None and alert.next_escalation_at < until:
        alert.next_escalation_at = until
    alert.save()
    event(alert, AlertEventKind.SILENCED, actor, reason, {"until": until.isoformat()})
    audit.record(
        actor=actor,
        action="alert.silence",
        target=alert,
        after={"silenced_until": until.isoformat()},
        reason=reason,
    )
    return alert


def reassign(*, actor: Actor, alert: Alert, username: str, reason: str) -> Alert:
    """Hand the alert to another member of its team, saying why."""
    require(actor.principal, Action.ALERT_RESPOND, alert)
    if not reason.strip():
        raise ValidationFailed("say why the alert changes hands", field="reason")
    user = (
        get_user_model()
        .objects.filter(username=username, memberships__team_id=alert.team_id, is_active=True)
        .first()
    )
    if user is None:
        raise ValidationFailed(
            f"{username!r} is not an active member of the team", field="assignee"
        )
    alert = _locked(alert)
    _check_open(alert, "reassigned")
    before = alert.assignee.get_username() if alert.assignee else None
    alert.assignee = user
    alert.save()
    change = event(
        alert,
        AlertEventKind.REASSIGNED,
        actor,
        reason,
        {"from": before, "to": user.get_username()},
    )
    audit.record(
        actor=actor,
        action="alert.reassign",
        target=alert,
        before={"assignee": before},
        after={"assignee": user.get_username()},
        reason=reason,
    )
    notify.announce(alert, f"reassigned:{change.pk}")
    return alert


def add_note(*, actor: Actor, alert: Alert, text: str) -> AlertEvent:
    require(actor.principal, Action.ALERT_RESPOND, alert)
    if not text.strip():
        raise ValidationFailed("a note cannot be empty", field="text")
    if len(text) > 4000:
        raise ValidationFailed("at most 4000 characters", field="text")
    return event(alert, AlertEventKind.NOTE, actor, text)
