"""Django admin for the review queues: a read-only window for platform admins. Every change goes
through reviews.submission, claims, decisions or appeals (the API or the pages), so it is
permission-checked, audited and in the item's history; the admin never writes.

It never shows an input summary: the team's reviewers read it on the item page, under the
reviewer duty, and a platform admin has no need of a subject's data."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from deployments.admin import ReadOnlyAdmin

from .models import Appeal, CallbackDelivery, ReviewEvent, ReviewItem


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return list(self.fields or [])

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class ReviewEventInline(ReadOnlyInline):
    model = ReviewEvent
    fields = ["created_at", "kind", "level", "actor_label", "detail"]


class CallbackDeliveryInline(ReadOnlyInline):
    model = CallbackDelivery
    fields = ["level", "status", "attempts", "last_status_code", "last_error", "delivered_at"]


class AppealInline(ReadOnlyInline):
    model = Appeal
    # Not the statement: the subject's own words are for the reviewers of the appeal.
    fields = ["created_at", "submitted_by_label", "appealed_decision"]


@admin.register(ReviewItem)
class ReviewItemAdmin(ReadOnlyAdmin):
    list_display = [
        "ref",
        "team",
        "deployment",
        "model_version",
        "reason",
        "mode",
        "level",
        "status",
        "decision",
        "sla_deadline",
        "created_at",
    ]
    list_filter = ["status", "level", "mode", "reason", "decision", "team"]
    list_select_related = ["team", "deployment__environment", "model_version__model"]
    search_fields = ["ref", "request_id", "deployment__name"]
    date_hierarchy = "created_at"
    exclude = ["input_summary"]
    inlines = [AppealInline, ReviewEventInline, CallbackDeliveryInline]


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "item",
        "level",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "last_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status"]
    list_select_related = ["item"]
    search_fields = ["item__ref"]
