"""Filters of the audit log (shared by its API list endpoint and its page) and of the teams
list. Filters narrow what a selector already restricted; they grant nothing."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from .models import AuditEvent, Team


class AuditEventFilterSet(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="icontains")
    actor_type = django_filters.CharFilter()
    action = django_filters.CharFilter(lookup_expr="startswith")
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()
    target = django_filters.CharFilter(field_name="target_label", lookup_expr="icontains")
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    request_id = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = [
            "actor",
            "actor_type",
            "action",
            "target_type",
            "target_id",
            "target",
            "occurred_after",
            "occurred_before",
            "request_id",
        ]


class TeamFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Team
        fields = ["q"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(
            Q(name__icontains=value) | Q(slug__icontains=value) | Q(description__icontains=value)
        )
