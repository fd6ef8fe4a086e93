"""Filters shared by the API list endpoints and the list pages (one definition for both)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from .models import ModelVersion, RegisteredModel, RiskTier, VersionStatus


class ModelFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    team = django_filters.CharFilter(field_name="team__slug", label="Team")
    risk_tier = django_filters.ChoiceFilter(choices=RiskTier.choices)
    tag = django_filters.CharFilter(method="has_tag", label="Tag")

    class Meta:
        model = RegisteredModel
        fields = ["q", "team", "risk_tier", "tag"]

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))

    def has_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # JSON containment is not on SQLite; tags are short lists, so match the JSON text.
        return queryset.filter(tags__icontains=f'"{value}"')


class VersionFilterSet(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=VersionStatus.choices)
    tag = django_filters.CharFilter(method="has_tag")
    source_commit = django_filters.CharFilter()

    class Meta:
        model = ModelVersion
        fields = ["status", "tag", "source_commit"]

    def has_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(tags__icontains=f'"{value}"')
