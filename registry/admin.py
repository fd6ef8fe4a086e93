"""Django admin for the registry. Changes made here go through the same audit log; versions are
immutable, as everywhere else."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from identity.admin import AuditedAdmin

from .models import Alias, ModelVersion, RegisteredModel


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
