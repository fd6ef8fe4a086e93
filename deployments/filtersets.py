"""Filters shared by the deployment and release API list endpoints and the list pages (one
definition for both). Filters narrow what a selector already restricted; they grant nothing."""

from __future__ import annotations

import django_filters

from .models import Deployment, Release, ReleaseState, Strategy


class DeploymentFilterSet(django_filters.FilterSet):
    environment = django_filters.CharFilter(field_name="environment__name", label="Environment")
    model = django_filters.CharFilter(field_name="model__name", label="Model")
    strategy = django_filters.ChoiceFilter(choices=Strategy.choices)

    class Meta:
        model = Deployment
        fields = ["environment", "model", "strategy"]


class ReleaseFilterSet(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=ReleaseState.choices, label="State")
    deployment = django_filters.NumberFilter(field_name="deployment_id", label="Deployment id")
    model = django_filters.CharFilter(field_name="deployment__model__name", label="Model")
    environment = django_filters.CharFilter(
        field_name="deployment__environment__name", label="Environment"
    )

    class Meta:
        model = Release
        fields = ["state", "deployment", "model", "environment"]
