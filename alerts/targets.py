"""Who an escalation step reaches at an instant: the people on call on a schedule, a person, or
the team's owners; and the fallbacks when a policy reaches nobody. Read-only; escalation decides
what to do with the answer and notifications whom to tell."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from identity.models import Role

from . import oncall
from .models import Alert, EscalationPolicy, EscalationStep, EscalationTarget, Schedule


def default_policy(team_id: int, at: datetime | None = None) -> EscalationPolicy | None:
    """The team's default policy with its steps, their people and schedules loaded (the
    schedules' overrides that end after `at`, when given)."""
    return _policies(at).filter(team_id=team_id, is_default=True).first()


def policy(policy_id: int, at: datetime | None = None) -> EscalationPolicy | None:
    return _policies(at).filter(pk=policy_id).first()


def steps_of(policy: EscalationPolicy | None) -> list[EscalationStep]:
    """The policy's steps in order; `Alert.escalation_step` is an index into this list."""
    if policy is None:
        return []
    return sorted(policy.steps.all(), key=lambda step: (step.position, step.id))


def people_of(step: EscalationStep, team_id: int, at: datetime) -> list[Any]:
    """The active people the step reaches at `at` (empty: a schedule gap, a departed person)."""
    if step.target == EscalationTarget.SCHEDULE:
        return oncall.on_call_at(step.schedule, at) if step.schedule is not None else []
    if step.target == EscalationTarget.USER:
        return [step.user] if step.user is not None and step.user.is_active else []
    if step.target == EscalationTarget.TEAM_OWNERS:
        return list(team_owners(team_id))
    return []


def why_empty(step: EscalationStep, at: datetime) -> str:
    """Why a step reached nobody, for the timeline."""
    if step.target == EscalationTarget.SCHEDULE:
        if step.schedule is None:
            return "its schedule was removed"
        return f"schedule {step.schedule.name} has a gap at {at:%Y-%m-%d %H:%M} UTC"
    if step.target == EscalationTarget.USER:
        name = step.user.get_username() if step.user is not None else "its person"
        return f"{name} is not an active user"
    return "the team has no active owner"


def team_owners(team_id: int) -> QuerySet[Any]:
    return _members(team_id).filter(memberships__role=Role.OWNER)


def on_duty(team_id: int) -> QuerySet[Any]:
    """Members who carry the on-call duty (Membership.is_on_call)."""
    return _members(team_id).filter(memberships__is_on_call=True)


def fallback_people(team_id: int) -> tuple[list[Any], str]:
    """Whom an alert goes to when its policy reaches nobody: the owners, else the members on
    call by duty. ([], "") only when the team truly has nobody."""
    owners = list(team_owners(team_id))
    if owners:
        return owners, "the team's owners"
    duty = list(on_duty(team_id))
    if duty:
        return duty, "the team's members on call"
    return [], ""


def current_people(alert: Alert, at: datetime) -> list[Any]:
    """Whom the alert's current step reaches now, assignee first (always included)."""
    people: list[Any] = []
    if alert.escalation_policy_id is not None:
        steps = steps_of(policy(alert.escalation_policy_id, at))
        if 0 <= alert.escalation_step < len(steps):
            people = people_of(steps[alert.escalation_step], alert.team_id, at)
    return unique([alert.assignee, *people])


def unique(people: Iterable[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for person in people:
        if person is not None and person.pk not in seen:
            seen.add(person.pk)
            out.append(person)
    return out


def _policies(at: datetime | None) -> QuerySet[EscalationPolicy]:
    schedules = oncall.with_rotations(Schedule.objects.all(), since=at)
    steps = (
        EscalationStep.objects.select_related("user")
        .prefetch_related(Prefetch("schedule", queryset=schedules))
        .order_by("position", "id")
    )
    return EscalationPolicy.objects.prefetch_related(Prefetch("steps", queryset=steps))


def _members(team_id: int) -> QuerySet[Any]:
    return (
        get_user_model()
        .objects.filter(memberships__team_id=team_id, is_active=True)
        .order_by("username", "id")
    )
