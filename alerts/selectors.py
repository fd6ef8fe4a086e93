"""Reading alerts, schedules, policies and incidents for the API and the pages. Every list goes
through `visible_to` (identity's one door), and every single-object lookup says "not found" for
what the caller may not see, before any permission check could tell that it exists."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from identity.permissions import Action, require

from .models import Alert, AlertQuerySet, EscalationPolicy, Incident, Schedule


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
