"""Thin DRF views of alerts, schedules, escalation policies and incidents (being written)."""

from __future__ import annotations

from rest_framework import viewsets


class AlertViewSet(viewsets.GenericViewSet):
    pass


class ScheduleViewSet(viewsets.GenericViewSet):
    pass


class EscalationPolicyViewSet(viewsets.GenericViewSet):
    pass


class IncidentViewSet(viewsets.GenericViewSet):
    pass
