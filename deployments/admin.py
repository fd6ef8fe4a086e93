"""Django admin for deployments: a read-only window for platform admins. Every change to an
environment, a deployment, a release or a rollback goes through deployments/services.py (the
API or the pages), so it is permission-checked, audited and reconciled; the admin never writes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import Approval, Deployment, DeploymentConfig, Environment, Release, Rollback


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    list_display = ["name", "runtime_kind", "metrics_kind", "staging", "is_production"]
    list_select_related = ["staging"]
    # runtime_config holds paths and names only, but the admin still has no need to show it.
    exclude = ["runtime_config"]


class ConfigInline(admin.TabularInline):
    model = DeploymentConfig
    extra = 0
    fields = ["revision", "replicas", "cpu_request", "memory_request", "created_by_label"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["name", "environment", "model", "strategy", "stable_version", "promoted_at"]
    list_filter = ["environment", "strategy"]
    list_select_related = ["environment", "model", "stable_version"]
    search_fields = ["name", "model__name"]
    inlines = [ConfigInline]


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    fields = ["user", "decision", "comment", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "deployment", "version", "state", "step_index", "author_label"]
    list_filter = ["state", "strategy"]
    list_select_related = ["deployment__environment", "version"]
    search_fields = ["deployment__name", "author_label"]
    inlines = [ApprovalInline]


@admin.register(Rollback)
class RollbackAdmin(ReadOnlyAdmin):
    list_display = ["id", "deployment", "to_version", "state", "actor_label", "created_at"]
    list_filter = ["state", "automatic"]
    list_select_related = ["deployment", "to_version"]
