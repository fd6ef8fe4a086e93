"""Reading alerts, schedules, policies and incidents for the API and the pages. Every list goes
through `visible_to` (identity's one door), and every single-object lookup says "not found" for
what the caller may not see, before any permission check could tell that it exists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import (
    Case,
    F,
    IntegerField,
    Prefetch,
    Q,
    QuerySet,
    TextChoices,
    Value,
    When,
)

from core.errors import NotFound, ValidationFailed
from identity.models import team_memberships
from identity.permissions import Action, require

from .models import (
    SEVERITY_RANK,
    Alert,
    AlertEvent,
    AlertQuerySet,
    AlertStatus,
    Delivery,
    EscalationPolicy,
    EscalationStep,
    Incident,
    IncidentStatus,
    NotificationChannel,
    Schedule,
)


def _pk(value: int | str, what: str, field: str) -> int:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise NotFound(f"{value!r} is not an {what} id", field=field) from None
    if not 0 < pk < 2**63:
        raise NotFound(f"no {what} {value}", field=field)
    return pk


def alert_list(principal: Any) -> AlertQuerySet:
    return Alert.objects.visible_to(principal).select_related(
        "team", "assignee", "deployment__environment", "model", "incident", "release"
    )


def alert_get(principal: Any, alert_id: int | str, *, field: str = "id") -> Alert:
    pk = _pk(alert_id, "alert", field)
    alert = alert_list(principal).filter(pk=pk).first()
    if alert is None:
        raise NotFound(f"no alert {alert_id}", field=field)
    require(principal, Action.ALERT_VIEW, alert)
    return alert


def schedule_list(principal: Any) -> Any:
    return Schedule.objects.visible_to(principal).select_related("team")


def schedule_get(principal: Any, schedule_id: int | str, *, field: str = "id") -> Schedule:
    pk = _pk(schedule_id, "schedule", field)
    schedule = schedule_list(principal).filter(pk=pk).first()
    if schedule is None:
        raise NotFound(f"no schedule {schedule_id}", field=field)
    require(principal, Action.TEAM_VIEW, schedule)
    return schedule


def policy_list(principal: Any) -> Any:
    return EscalationPolicy.objects.visible_to(principal).select_related("team")


def policy_get(principal: Any, policy_id: int | str, *, field: str = "id") -> EscalationPolicy:
    pk = _pk(policy_id, "escalation policy", field)
    policy = policy_list(principal).filter(pk=pk).first()
    if policy is None:
        raise NotFound(f"no escalation policy {policy_id}", field=field)
    require(principal, Action.TEAM_VIEW, policy)
    return policy


def incident_list(principal: Any) -> Any:
    return Incident.objects.visible_to(principal).select_related(
        "team", "owner", "deployment__environment", "deployment__model"
    )


def incident_get(principal: Any, incident_id: int | str, *, field: str = "id") -> Incident:
    pk = _pk(incident_id, "incident", field)
    incident = incident_list(principal).filter(pk=pk).first()
    if incident is None:
        raise NotFound(f"no incident {incident_id}", field=field)
    require(principal, Action.INCIDENT_VIEW, incident)
    return incident


# Shaped for the portal's pages ------------------------------------------------------------


class AlertView(TextChoices):
    """The tabs of the alerts page."""

    MINE = "mine", "My alerts"
    TEAM = "team", "My teams' open alerts"
    RESOLVED = "resolved", "Resolved"
    TRIAGE = "triage", "Triage"


def _by_severity() -> Case:
    return Case(
        *(When(severity=value, then=Value(rank)) for value, rank in SEVERITY_RANK.items()),
        default=Value(len(SEVERITY_RANK)),
        output_field=IntegerField(),
    )


def alerts_in_view(principal: Any, view: AlertView) -> AlertQuerySet:
    """One tab of the alerts page. "Mine": open alerts assigned to me, or of a team I hold the
    on-call duty for (read from the memberships `can()` already loaded: no extra query); open
    tabs are worst first, the resolved one newest first. Joined: only what a row shows (team,
    assignee, deployment and its environment); fewer joins plan and run faster on a big table."""
    alerts = (
        alert_list(principal)
        .select_related(None)
        .select_related("team", "assignee", "deployment__environment")
    )
    if view == AlertView.RESOLVED:
        return alerts.filter(status=AlertStatus.RESOLVED).order_by("-resolved_at", "-id")
    alerts = alerts.open()
    if view == AlertView.MINE:
        on_call = [t for t, m in team_memberships(principal).items() if m.get("is_on_call")]
        alerts = alerts.filter(Q(assignee_id=principal.pk) | Q(team_id__in=on_call))
    elif view == AlertView.TRIAGE:
        alerts = alerts.filter(needs_triage=True)
    return alerts.order_by(_by_severity(), "-starts_at", "-id")


def _severity_level() -> Case:
    # The higher the worse: sorting it descending puts critical first (the rank reversed).
    return Case(
        *(
            When(severity=value, then=Value(len(SEVERITY_RANK) - rank))
            for value, rank in SEVERITY_RANK.items()
        ),
        default=Value(0),
        output_field=IntegerField(),
    )


def _incident_status_order() -> Case:
    return Case(
        *(When(status=s, then=Value(i)) for i, s in enumerate(IncidentStatus.values)),
        output_field=IntegerField(),
    )


# The columns a list of alerts or incidents sorts on; a leading "-" sorts descending.
ALERT_SORTS = {
    "severity": _severity_level,
    "since": lambda: F("starts_at"),
    "title": lambda: F("title"),
    "resolved": lambda: F("resolved_at"),
}
INCIDENT_SORTS = {
    "status": _incident_status_order,
    "severity": _severity_level,
    "opened": lambda: F("opened_at"),
    "title": lambda: F("title"),
}


def _sorted(rows: Any, columns: dict[str, Any], sort: str, *ties: str) -> Any:
    key = sort.removeprefix("-")
    if key not in columns:
        raise ValidationFailed(f"must be one of {sorted(columns)}, or one with '-'", field="sort")
    column = columns[key]()
    first = column.desc(nulls_last=True) if sort.startswith("-") else column.asc(nulls_last=True)
    return rows.order_by(first, *ties)


def alerts_sorted(alerts: AlertQuerySet, sort: str) -> AlertQuerySet:
    """A list of alerts sorted on one column of ALERT_SORTS ("-severity": worst first), ties
    newest first. An unknown column is bad input on the field `sort`."""
    return _sorted(alerts, ALERT_SORTS, sort, "-starts_at", "-id")


def incidents_sorted(incidents: Any, sort: str) -> Any:
    """A list of incidents sorted on one column of INCIDENT_SORTS ("status": open first), ties
    newest first."""
    return _sorted(incidents, INCIDENT_SORTS, sort, "-opened_at", "-id")


def alert_events(alert: Alert) -> QuerySet[AlertEvent]:
    return alert.events.order_by("at", "id")


def alert_deliveries(alert: Alert) -> QuerySet[Delivery]:
    return alert.deliveries.select_related("user", "channel").order_by("created_at", "id")


def open_alerts_by_deployment(principal: Any, deployment_ids: Iterable[int]) -> dict[int, Alert]:
    """The worst open alert of each of these deployments, for the monitoring overview: one
    query whatever the number of deployments (none without ids)."""
    ids = sorted(set(deployment_ids))
    if not ids:
        return {}
    alerts = (
        alert_list(principal)
        .open()
        .filter(deployment_id__in=ids)
        .order_by("deployment_id", _by_severity(), "-starts_at", "-id")
        .distinct("deployment_id")
    )
    return {alert.deployment_id: alert for alert in alerts}


def deployment_open_alerts(principal: Any, deployment: Any) -> AlertQuerySet:
    return (
        alert_list(principal)
        .open()
        .filter(deployment=deployment)
        .order_by(_by_severity(), "-starts_at", "-id")
    )


def policies_with_steps(principal: Any) -> Any:
    steps = EscalationStep.objects.select_related("schedule", "user").order_by("position")
    return policy_list(principal).prefetch_related(Prefetch("steps", queryset=steps))


def channel_list(principal: Any) -> Any:
    return NotificationChannel.objects.visible_to(principal).select_related("team")


def channel_get(principal: Any, channel_id: int | str, *, field: str = "id") -> NotificationChannel:
    pk = _pk(channel_id, "notification channel", field)
    channel = channel_list(principal).filter(pk=pk).first()
    if channel is None:
        raise NotFound(f"no notification channel {channel_id}", field=field)
    require(principal, Action.TEAM_VIEW, channel)
    return channel


def alerts_for_me(principal: Any) -> AlertQuerySet:
    """Open alerts (firing or acknowledged) assigned to the principal, by hand or by the
    escalation that picked them from an on-call rotation, or of a team whose on-call duty they
    hold, worst first: the home page's share of the alerts page's "My alerts" tab."""
    return alerts_in_view(principal, AlertView.MINE)
