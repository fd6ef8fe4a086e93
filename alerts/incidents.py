"""Incidents: one thing that went wrong, with one owner, one status and one timeline. Opened from
an alert (one click, or automatically for a configured severity) or by hand; every change is an
IncidentEvent and an audit event. The timeline is gathered, never copied: it reads the alerts,
releases and rollbacks where they live, in a constant number of queries. Must never import
alerts.lifecycle (lifecycle calls in here when an alert fires)."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Min, Q

from core import clock
from core.errors import Conflict, ValidationFailed
from deployments.models import Deployment, Release, ReleaseStep, Rollback
from identity import audit
from identity.audit import Actor
from identity.models import Team
from identity.permissions import Action, require

from . import oncall, targets
from .models import (
    SEVERITY_RANK,
    Alert,
    AlertEvent,
    AlertEventKind,
    EscalationTarget,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Severity,
)
from .timeline import event as alert_event

log = logging.getLogger(__name__)

AUTOMATIC = Actor.system("incidents")
MAX_NOTE = 4000
MAX_SUMMARY = 10000


class IncidentEventKind(enum.StrEnum):
    OPENED = "opened"
    ALERT = "alert"
    NOTE = "note"
    STATUS = "status"
    OWNER = "owner"


# The one table of status changes. Closed is final: what happens next is a new incident.
INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.MITIGATED, IncidentStatus.CLOSED}),
    IncidentStatus.MITIGATED: frozenset({IncidentStatus.OPEN, IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
}

# Release steps that tell the story of a release in an incident: verdicts and decisions, not
# every traffic shift or smoke test.
DECISIVE_STEP_KINDS = frozenset(
    {
        "analysis",
        "approve",
        "reject",
        "pause",
        "resume",
        "promoted",
        "rollback",
        "rolled_back",
        "abort",
        "aborted",
        "fail",
    }
)


def lookback() -> timedelta:
    """How far before an incident opened (or its first alert started) its timeline reaches:
    the release that caused it usually started a while before anyone noticed. Setting
    INCIDENT_LOOKBACK_SECONDS."""
    return timedelta(seconds=float(getattr(settings, "INCIDENT_LOOKBACK_SECONDS", 3600)))


def _event(
    incident: Incident, kind: str, actor: Actor, text: str = "", **data: Any
) -> IncidentEvent:
    return IncidentEvent.objects.create(
        incident=incident, kind=kind, at=clock.now(), actor_label=actor.label, text=text, data=data
    )


def _member(team_id: int, username: str, field: str) -> Any:
    user = (
        get_user_model()
        .objects.filter(username=username, is_active=True, memberships__team_id=team_id)
        .first()
    )
    if user is None:
        raise ValidationFailed(f"{username!r} is not an active member of the team", field=field)
    return user


def on_call_owner(team: Team, at: datetime) -> Any:
    """Whoever is on call at `at` on the first schedule step of the team's default policy."""
    for step in targets.steps_of(targets.default_policy(team.pk, at)):
        if step.target == EscalationTarget.SCHEDULE and step.schedule is not None:
            people = oncall.on_call_at(step.schedule, at)
            return people[0] if people else None
    return None


def _attach(incident: Incident, alert: Alert, actor: Actor) -> None:
    alert.incident = incident
    alert.save(update_fields=["incident", "updated_at"])
    alert_event(
        alert,
        AlertEventKind.INCIDENT,
        actor,
        f"added to incident #{incident.pk}: {incident.title}",
        {"incident": incident.pk},
    )


def _locked_alert(alert: Alert) -> Alert:
    return Alert.objects.select_for_update(of=("self",)).select_related("incident").get(pk=alert.pk)


def _check_free(alert: Alert, field: str) -> None:
    if alert.incident is not None and alert.incident.status != IncidentStatus.CLOSED:
        raise Conflict(
            f"alert #{alert.pk} is already in incident #{alert.incident_id}", field=field
        )


@transaction.atomic
def open_incident(
    *,
    actor: Actor,
    team: Team | None = None,
    alert: Alert | None = None,
    deployment: Deployment | None = None,
    title: str = "",
    severity: str = "",
) -> Incident:
    """From an alert (its team, deployment, severity and title; the alert attached; owned by
    its assignee, else by whoever is on call now, else by the person opening it), or by hand
    (a team, a title and a severity; a deployment of that team, optionally)."""
    now = clock.now()
    if alert is not None:
        require(actor.principal, Action.INCIDENT_MANAGE, alert)
        alert = _locked_alert(alert)
        _check_free(alert, "alert")
        if team is not None and team.pk != alert.team_id:
            raise ValidationFailed("the alert belongs to another team", field="team")
        team = alert.team
        deployment = deployment or alert.deployment
        title = title or alert.title
        severity = severity or alert.severity
    elif team is None:
        raise ValidationFailed("name the team, or the alert to open it from", field="team")
    else:
        require(actor.principal, Action.INCIDENT_MANAGE, team)
    if not title.strip():
        raise ValidationFailed("an incident needs a title", field="title")
    if len(title) > 300:
        raise ValidationFailed("at most 300 characters", field="title")
    severity = severity or Severity.WARNING
    if severity not in Severity.values:
        raise ValidationFailed(f"one of {', '.join(Severity.values)}", field="severity")
    if deployment is not None and deployment.model.team_id != team.pk:
        raise ValidationFailed("the deployment belongs to another team", field="deployment")
    owner = alert.assignee if alert is not None and alert.assignee_id else None
    owner = owner or on_call_owner(team, now) or actor.user
    incident = Incident.objects.create(
        team=team,
        deployment=deployment,
        title=title.strip(),
        severity=severity,
        owner=owner,
        opened_by_label=actor.label,
        opened_at=now,
    )
    _event(
        incident,
        IncidentEventKind.OPENED,
        actor,
        f"opened from alert #{alert.pk}" if alert is not None else "opened by hand",
        owner=owner.get_username() if owner else None,
        alert=alert.pk if alert is not None else None,
    )
    if alert is not None:
        _attach(incident, alert, actor)
    audit.record(
        actor=actor,
        action="incident.open",
        target=incident,
        after={
            **audit.snapshot(incident, ("title", "severity", "status", "deployment")),
            "owner": owner.get_username() if owner else None,
            "alert": alert.pk if alert is not None else None,
        },
    )
    return incident


def auto_incident_severity() -> str:
    """ALERTS_AUTO_INCIDENT_SEVERITY: alerts of this severity or worse open an incident by
    themselves when they fire; "" (the default) never does."""
    return str(getattr(settings, "ALERTS_AUTO_INCIDENT_SEVERITY", "") or "").strip().lower()


def open_for_alert_automatically(alert: Alert) -> Incident | None:
    """Called by the lifecycle for an alert that has just fired. A misconfigured severity is
    logged and opens nothing: alerting itself must go on."""
    threshold = auto_incident_severity()
    if not threshold:
        return None
    if threshold not in Severity.values:
        log.error(
            "ALERTS_AUTO_INCIDENT_SEVERITY=%r is not a severity; no incident opened", threshold
        )
        return None
    if SEVERITY_RANK[Severity(alert.severity)] > SEVERITY_RANK[Severity(threshold)]:
        return None
    if alert.incident_id is not None:
        return None
    return open_incident(actor=AUTOMATIC, alert=alert)


def _locked(incident: Incident) -> Incident:
    return Incident.objects.select_for_update(of=("self",)).get(pk=incident.pk)


def _check_not_closed(incident: Incident, verb: str) -> None:
    if incident.status == IncidentStatus.CLOSED:
        raise Conflict(f"the incident is closed: it cannot be {verb}", field="status")


@transaction.atomic
def attach_alert(*, actor: Actor, incident: Incident, alert: Alert) -> None:
    """Add another alert of the team to an open incident."""
    require(actor.principal, Action.INCIDENT_MANAGE, incident)
    incident = _locked(incident)
    _check_not_closed(incident, "given alerts")
    alert = _locked_alert(alert)
    if alert.team_id != incident.team_id:
        raise ValidationFailed("the alert belongs to another team", field="alert")
    if alert.incident_id == incident.pk:
        return
    _check_free(alert, "alert")
    if incident.deployment_id is None and alert.deployment_id is not None:
        incident.deployment_id = alert.deployment_id
        incident.save(update_fields=["deployment"])
    _attach(incident, alert, actor)
    _event(
        incident,
        IncidentEventKind.ALERT,
        actor,
        f"alert #{alert.pk}: {alert.title}",
        alert=alert.pk,
    )
    audit.record(
        actor=actor, action="incident.attach_alert", target=incident, after={"alert": alert.pk}
    )


@transaction.atomic
def add_note(*, actor: Actor, incident: Incident, text: str) -> IncidentEvent:
    """What was seen, tried or decided; closed incidents take notes too (for next time)."""
    require(actor.principal, Action.INCIDENT_MANAGE, incident)
    if not text.strip():
        raise ValidationFailed("a note cannot be empty", field="text")
    if len(text) > MAX_NOTE:
        raise ValidationFailed(f"at most {MAX_NOTE} characters", field="text")
    note = _event(incident, IncidentEventKind.NOTE, actor, text)
    audit.record(actor=actor, action="incident.note", target=incident, after={"note": note.pk})
    return note


@transaction.atomic
def set_status(*, actor: Actor, incident: Incident, status: str, summary: str = "") -> Incident:
    """open -> mitigated -> closed (mitigated may fall back to open). Closing needs the summary:
    the notes for next time. A closed incident stays closed."""
    require(actor.principal, Action.INCIDENT_MANAGE, incident)
    if status not in IncidentStatus.values:
        raise ValidationFailed(f"one of {', '.join(IncidentStatus.values)}", field="status")
    if len(summary) > MAX_SUMMARY:
        raise ValidationFailed(f"at most {MAX_SUMMARY} characters", field="summary")
    incident = _locked(incident)
    before = incident.status
    if status == before and status != IncidentStatus.CLOSED:
        return incident
    if status not in INCIDENT_TRANSITIONS[before]:
        raise Conflict(f"a {before} incident cannot become {status}", field="status")
    now = clock.now()
    if status == IncidentStatus.CLOSED:
        if not summary.strip():
            raise ValidationFailed("closing an incident needs a summary", field="summary")
        incident.summary = summary.strip()
        incident.closed_at = now
    elif status == IncidentStatus.MITIGATED:
        incident.mitigated_at = now
    incident.status = status
    incident.save()
    _event(
        incident,
        IncidentEventKind.STATUS,
        actor,
        summary.strip() if status == IncidentStatus.CLOSED else f"{before} -> {status}",
        before=before,
        after=status,
    )
    audit.record(
        actor=actor,
        action="incident.status",
        target=incident,
        before={"status": before},
        after={"status": status},
        reason=summary.strip(),
    )
    return incident


@transaction.atomic
def set_owner(*, actor: Actor, incident: Incident, username: str, reason: str) -> Incident:
    """Hand the incident to another member of its team, saying why."""
    require(actor.principal, Action.INCIDENT_MANAGE, incident)
    if not reason.strip():
        raise ValidationFailed("say why the incident changes hands", field="reason")
    user = _member(incident.team_id, username, "owner")
    incident = _locked(incident)
    _check_not_closed(incident, "handed over")
    before = incident.owner.get_username() if incident.owner else None
    incident.owner = user
    incident.save(update_fields=["owner"])
    _event(incident, IncidentEventKind.OWNER, actor, reason.strip(), before=before, after=username)
    audit.record(
        actor=actor,
        action="incident.owner",
        target=incident,
        before={"owner": before},
        after={"owner": user.get_username()},
        reason=reason.strip(),
    )
    return incident


# Timeline -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor_label: str
    text: str
    link: str | None


def window(incident: Incident) -> tuple[datetime, datetime]:
    """[earliest of opening and its alerts' starts, minus the lookback] .. closed_at or now."""
    first_alert = Alert.objects.filter(incident=incident).aggregate(first=Min("starts_at"))
    start = min(t for t in (incident.opened_at, first_alert["first"]) if t is not None)
    return start - lookback(), incident.closed_at or clock.now()


def _alert_entries(incident: Incident, start: datetime, end: datetime) -> list[TimelineEntry]:
    scope = Q(alert__incident=incident)
    if incident.deployment_id is not None:
        scope |= Q(
            alert__deployment_id=incident.deployment_id,
            alert__starts_at__gte=start,
            alert__starts_at__lte=end,
        )
    events = AlertEvent.objects.filter(scope).order_by("at", "id")
    return [
        TimelineEntry(
            e.at,
            f"alert.{e.kind}",
            e.actor_label,
            f"alert #{e.alert_id} {e.get_kind_display().lower()}"
            + (f": {e.text}" if e.text else ""),
            f"/alerts/{e.alert_id}/",
        )
        for e in events
    ]


def _release_entries(incident: Incident, start: datetime, end: datetime) -> list[TimelineEntry]:
    in_window = Q(created_at__range=(start, end)) | Q(finished_at__range=(start, end))
    releases = {
        r.pk: r
        for r in Release.objects.filter(deployment_id=incident.deployment_id)
        .filter(in_window)
        .select_related("version", "from_version")
    }
    if not releases:
        return []
    entries = []
    for release in releases.values():
        if start <= release.created_at <= end:
            entries.append(
                TimelineEntry(
                    release.created_at,
                    "release.created",
                    release.author_label,
                    f"release #{release.pk}: v{release.version.number}"
                    + (
                        f" replacing v{release.from_version.number}" if release.from_version else ""
                    ),
                    f"/releases/{release.pk}/",
                )
            )
    steps = ReleaseStep.objects.filter(
        release_id__in=list(releases), kind__in=DECISIVE_STEP_KINDS, created_at__range=(start, end)
    ).order_by("created_at", "id")
    for step in steps:
        release = releases[step.release_id]
        verdict = f" {step.outcome}" if step.outcome else ""
        to_state = f" -> {step.to_state}" if step.to_state != step.from_state else ""
        entries.append(
            TimelineEntry(
                step.created_at,
                f"release.{step.kind}",
                step.actor_label,
                f"release #{release.pk} (v{release.version.number}) {step.kind}{verdict}{to_state}"
                + (f": {step.reason}" if step.reason else ""),
                f"/releases/{release.pk}/",
            )
        )
    return entries


def _rollback_entries(incident: Incident, start: datetime, end: datetime) -> list[TimelineEntry]:
    rollbacks = (
        Rollback.objects.filter(deployment_id=incident.deployment_id)
        .filter(Q(created_at__range=(start, end)) | Q(completed_at__range=(start, end)))
        .select_related("deployment", "to_version", "from_version")
    )
    entries = []
    link = f"/deployments/{incident.deployment_id}/"
    for rollback in rollbacks:
        how = "automatic rollback" if rollback.automatic else f"rollback by {rollback.actor_label}"
        versions = f"to v{rollback.to_version.number}" + (
            f" from v{rollback.from_version.number}" if rollback.from_version else ""
        )
        if start <= rollback.created_at <= end:
            entries.append(
                TimelineEntry(
                    rollback.created_at,
                    "rollback.automatic" if rollback.automatic else "rollback.manual",
                    rollback.actor_label,
                    f"{how} of {rollback.deployment.name} {versions}"
                    + (f": {rollback.reason}" if rollback.reason else ""),
                    link,
                )
            )
        if rollback.completed_at and start <= rollback.completed_at <= end:
            entries.append(
                TimelineEntry(
                    rollback.completed_at,
                    f"rollback.{rollback.state}",
                    rollback.actor_label,
                    f"{how} {versions}: {rollback.get_state_display().lower()}",
                    link,
                )
            )
    return entries


def timeline(incident: Incident) -> list[TimelineEntry]:
    """Everything that bears on the incident, oldest first, gathered where it lives: its own
    events; the events of its alerts and of every alert of its deployment that started in its
    window; the deployment's releases (with their verdicts and decisions) and rollbacks in the
    window. Six queries, however much the window holds."""
    start, end = window(incident)
    entries = [
        TimelineEntry(e.at, f"incident.{e.kind}", e.actor_label, e.text, None)
        for e in IncidentEvent.objects.filter(incident=incident).order_by("at", "id")
    ]
    entries += _alert_entries(incident, start, end)
    if incident.deployment_id is not None:
        entries += _release_entries(incident, start, end)
        entries += _rollback_entries(incident, start, end)
    return sorted(entries, key=lambda entry: entry.at)
