"""Filters of alerts, incidents, schedules and escalation policies, shared by the API list
endpoints and the pages (one definition for both). Filters narrow what a selector already
restricted to the caller's teams; they grant nothing."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from identity.principals import is_token

from .models import (
    Alert,
    AlertSource,
    AlertStatus,
    EscalationPolicy,
    Incident,
    IncidentStatus,
    Schedule,
    Severity,
)

ME = "me"


def _person(filterset: django_filters.FilterSet, queryset: QuerySet, field: str, value: str) -> Any:
    """`me` is the signed-in person (a CI token is nobody's assignee); else a username."""
    if value != ME:
        return queryset.filter(**{f"{field}__username": value})
    request = getattr(filterset, "request", None)
    user = getattr(request, "user", None)
    if user is None or is_token(user) or not getattr(user, "is_authenticated", False):
        return queryset.none()
    return queryset.filter(**{f"{field}_id": user.pk})


class AlertFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    source = django_filters.ChoiceFilter(choices=AlertSource.choices)
    team = django_filters.CharFilter(field_name="team__slug", label="Team")
    deployment = django_filters.NumberFilter(field_name="deployment_id", label="Deployment id")
    assignee = django_filters.CharFilter(
        method="filter_assignee", label="Assignee (a username, or me)"
    )
    triage = django_filters.BooleanFilter(
        field_name="needs_triage", label="Labels named no deployment (the triage list)"
    )

    class Meta:
        model = Alert
        fields = ["status", "severity", "source", "team", "deployment", "assignee", "triage"]

    def filter_assignee(self, queryset: QuerySet, name: str, value: str) -> Any:
        return _person(self, queryset, "assignee", value)


class IncidentFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    team = django_filters.CharFilter(field_name="team__slug", label="Team")
    deployment = django_filters.NumberFilter(field_name="deployment_id", label="Deployment id")
    owner = django_filters.CharFilter(method="filter_owner", label="Owner (a username, or me)")

    class Meta:
        model = Incident
        fields = ["status", "severity", "team", "deployment", "owner"]

    def filter_owner(self, queryset: QuerySet, name: str, value: str) -> Any:
        return _person(self, queryset, "owner", value)


class ScheduleFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", label="Team")

    class Meta:
        model = Schedule
        fields = ["team"]


class EscalationPolicyFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", label="Team")
    is_default = django_filters.BooleanFilter()

    class Meta:
        model = EscalationPolicy
        fields = ["team", "is_default"]
