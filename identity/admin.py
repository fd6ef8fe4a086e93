"""Django admin for teams, memberships, tokens and the audit log. Every save and delete made here
is audited (`AuditedAdmin`, which the other apps' admins use too); the audit log is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from . import audit
from .audit import Actor
from .models import ApiToken, AuditEvent, Membership, Team


class AuditedAdmin(admin.ModelAdmin):
    """Records an audit event for every save and delete done in the admin."""

    audit_fields: tuple[str, ...] = ()

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change:
            original = type(obj).objects.get(pk=obj.pk)
            before = audit.snapshot(original, self.audit_fields)
        super().save_model(request, obj, form, change)
        audit.record(
            actor=Actor.from_principal(request.user),
            action=f"{obj._meta.model_name}.{'update' if change else 'create'}",
            target=obj,
            before=before,
            after=audit.snapshot(obj, self.audit_fields),
            reason="admin",
        )

    def delete_model(self, request: Any, obj: Any) -> None:
        audit.record(
            actor=Actor.from_principal(request.user),
            action=f"{obj._meta.model_name}.delete",
            target=obj,
            before=audit.snapshot(obj, self.audit_fields),
            reason="admin",
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    audit_fields = ("slug", "name", "description")


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["team", "user", "role", "is_approver", "is_on_call", "is_reviewer"]
    list_filter = ["role", "is_approver", "is_on_call", "is_reviewer"]
    list_select_related = ["team", "user"]
    raw_id_fields = ["user"]
    audit_fields = ("team", "user", "role", "is_approver", "is_on_call", "is_reviewer")


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = ["team", "name", "prefix", "scopes", "expires_at", "last_used_at", "revoked_at"]
    list_select_related = ["team"]
    readonly_fields = [
        "team",
        "name",
        "prefix",
        "scopes",
        "expires_at",
        "created_by",
        "last_used_at",
    ]
    exclude = ["secret_hash"]
    audit_fields = ("name", "prefix", "scopes", "expires_at", "revoked_at")

    def has_add_permission(self, request: Any) -> bool:
        return False  # created on the team page or the API, where the secret is shown once


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "actor_label", "action", "target_label", "request_id"]
    list_filter = ["actor_type", "action"]
    search_fields = ["actor_label", "target_label", "request_id"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
