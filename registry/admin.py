"""Django admin for the registry. Changes made here go through the same audit log; versions are
immutable and the audit log is read-only, as everywhere else."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from controlplane import audit
from controlplane.audit import Actor

from .models import Alias, ApiToken, AuditEvent, Membership, ModelVersion, RegisteredModel, Team


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


@admin.register(RegisteredModel)
class RegisteredModelAdmin(AuditedAdmin):
    list_display = ["name", "team", "risk_tier", "last_version_number", "updated_at"]
    list_filter = ["risk_tier", "team"]
    list_select_related = ["team"]
    search_fields = ["name", "description"]
    readonly_fields = ["last_version_number"]
    audit_fields = ("name", "team", "risk_tier", "description", "tags")


@admin.register(ModelVersion)
class ModelVersionAdmin(AuditedAdmin):
    list_display = ["model", "number", "status", "artifact_digest", "digest_verified", "created_at"]
    list_filter = ["status", "digest_verified"]
    list_select_related = ["model"]
    search_fields = ["model__name", "artifact_digest", "source_commit"]
    audit_fields = ("status", "tags")

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        # Immutable after registration, except status and tags.
        fields = [f.name for f in self.model._meta.fields]
        return [f for f in fields if f not in ModelVersion.MUTABLE_FIELDS]

    def has_add_permission(self, request: Any) -> bool:
        return False  # versions are registered through the API, by digest

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Alias)
class AliasAdmin(AuditedAdmin):
    list_display = ["model", "name", "version", "updated_at"]
    list_select_related = ["model", "version"]
    audit_fields = ("model", "name", "version")


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
