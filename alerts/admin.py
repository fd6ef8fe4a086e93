"""Django admin for alerts, on-call and incidents: a read-only window for platform admins. Every
change goes through alerts.lifecycle, alerts.services or alerts.incidents (the API or the
pages), so it is permission-checked, audited and on the alert's or incident's timeline; the
admin never writes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from deployments.admin import ReadOnlyAdmin

from .models import (
    Alert,
    AlertEvent,
    Delivery,
    EscalationPolicy,
    EscalationStep,
    Incident,
    IncidentEvent,
    LayerMember,
    NotificationChannel,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return list(self.fields or [])

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class AlertEventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ["at", "kind", "actor_label", "text"]


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ["change", "kind", "recipient", "status", "attempts", "last_error", "sent_at"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "team",
        "title",
        "severity",
        "status",
        "source",
        "deployment",
        "assignee",
        "starts_at",
        "resolved_at",
    ]
    list_filter = ["status", "severity", "source", "needs_triage"]
    list_select_related = ["team", "deployment__environment", "assignee"]
    search_fields = ["title", "rule", "fingerprint", "team__slug"]
    date_hierarchy = "starts_at"
    inlines = [AlertEventInline, DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["alert", "change", "kind", "recipient", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["alert"]
    search_fields = ["recipient", "change"]


class LayerMemberInline(ReadOnlyInline):
    model = LayerMember
    fields = ["position", "user"]


@admin.register(ScheduleLayer)
class ScheduleLayerAdmin(ReadOnlyAdmin):
    list_display = ["schedule", "name", "position", "rotation_start", "shift_hours", "ends_at"]
    list_select_related = ["schedule__team"]
    inlines = [LayerMemberInline]


class LayerInline(ReadOnlyInline):
    model = ScheduleLayer
    fields = ["name", "position", "rotation_start", "shift_hours", "active_from", "active_until"]
    show_change_link = True


class OverrideInline(ReadOnlyInline):
    model = ScheduleOverride
    fields = ["user", "starts_at", "ends_at", "reason", "created_by_label"]


@admin.register(Schedule)
class ScheduleAdmin(ReadOnlyAdmin):
    list_display = ["name", "team", "time_zone", "created_at"]
    list_filter = ["team"]
    list_select_related = ["team"]
    search_fields = ["name", "team__slug"]
    inlines = [LayerInline, OverrideInline]


class StepInline(ReadOnlyInline):
    model = EscalationStep
    fields = ["position", "target", "schedule", "user", "wait_minutes"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(ReadOnlyAdmin):
    list_display = ["name", "team", "is_default", "repeat", "created_at"]
    list_filter = ["is_default", "team"]
    list_select_related = ["team"]
    inlines = [StepInline]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ReadOnlyAdmin):
    # url_env is the NAME of the variable holding the URL, never the URL: safe to show.
    list_display = ["name", "team", "url_env", "is_active", "created_at"]
    list_filter = ["is_active", "team"]
    list_select_related = ["team"]


class IncidentEventInline(ReadOnlyInline):
    model = IncidentEvent
    fields = ["at", "kind", "actor_label", "text"]


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "team",
        "title",
        "severity",
        "status",
        "owner",
        "deployment",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["status", "severity", "team"]
    list_select_related = ["team", "owner", "deployment__environment"]
    search_fields = ["title", "summary"]
    date_hierarchy = "opened_at"
    inlines = [IncidentEventInline]
