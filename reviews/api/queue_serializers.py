"""Translation between JSON and review items for the reviewers' API (the queue, an item's review
page, claims and decisions). Shapes and types only: reviews.claims and reviews.decisions decide
what is allowed. The input summary appears in the review detail only, never in the queue list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import StrictCharField, StrictIntegerField, StrictSerializer

from .. import sla
from ..models import ReviewEvent, ReviewItem


def _now(serializer: serializers.Serializer) -> datetime:
    """The instant the response describes: one for the whole page (set by the view)."""
    return serializer.context["now"]


class QueueItemSerializer(serializers.ModelSerializer):
    """One row of the queue: what to decide on, by when, and whether I may take it."""

    team = serializers.CharField(source="team.slug", read_only=True)
    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    deployment_name = serializers.CharField(source="deployment.name", read_only=True)
    environment = serializers.CharField(source="deployment.environment.name", read_only=True)
    model = serializers.CharField(source="deployment.model.name", read_only=True)
    version = serializers.IntegerField(source="model_version.number", read_only=True)
    claimed_by = serializers.CharField(
        source="claimed_by.username", read_only=True, allow_null=True
    )
    sla_seconds_left = serializers.SerializerMethodField(
        help_text="Seconds until the SLA deadline; negative once it has passed"
    )
    sla_breached = serializers.SerializerMethodField()
    may_take = serializers.SerializerMethodField(
        help_text="Whether you may claim it now (not held by someone else, not an appeal of "
        "your own decision)"
    )

    class Meta:
        model = ReviewItem
        fields = [
            "ref",
            "team",
            "deployment",
            "deployment_name",
            "environment",
            "model",
            "version",
            "track",
            "request_id",
            "mode",
            "reason",
            "status",
            "level",
            "prediction",
            "confidence",
            "sla_deadline",
            "sla_seconds_left",
            "sla_breached",
            "claimed_by",
            "claimed_at",
            "claim_expires_at",
            "may_take",
            "created_at",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_sla_seconds_left(self, item: ReviewItem) -> int | None:
        left = sla.time_left(item, _now(self))
        return None if left is None else int(left.total_seconds())

    @extend_schema_field(serializers.BooleanField())
    def get_sla_breached(self, item: ReviewItem) -> bool:
        return item.is_open and item.sla_deadline <= _now(self)

    @extend_schema_field(serializers.BooleanField())
    def get_may_take(self, item: ReviewItem) -> bool:
        annotated = getattr(item, "may_take", None)
        if annotated is not None:
            return bool(annotated)
        return bool(self.context.get("may_take", False))


class AppealSerializer(serializers.Serializer):
    statement = serializers.CharField()
    appealed_decision = serializers.CharField()
    appealed_output = serializers.JSONField(allow_null=True)
    created_at = serializers.DateTimeField()


class ReviewDetailSerializer(QueueItemSerializer):
    """Everything a reviewer decides on, the input summary included, and the decision so far."""

    decided_by = serializers.CharField(
        source="decided_by.username", read_only=True, allow_null=True
    )
    output = serializers.JSONField(source="final_output", read_only=True, allow_null=True)
    appeal = serializers.SerializerMethodField()

    class Meta(QueueItemSerializer.Meta):
        fields = [
            *QueueItemSerializer.Meta.fields,
            "input_summary",
            "summary_purged_at",
            "explanation",
            "decision",
            "output",
            "decision_reason",
            "decided_by",
            "decided_at",
            "appeal",
        ]

    @extend_schema_field(AppealSerializer(allow_null=True))
    def get_appeal(self, item: ReviewItem) -> dict[str, Any] | None:
        try:
            appeal = item.appeal  # joined by the selector: no query
        except ObjectDoesNotExist:  # a reverse one-to-one raises when there is none
            return None
        return AppealSerializer(appeal).data


class ReviewEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = ReviewEvent
        fields = ["id", "kind", "level", "actor", "detail", "created_at"]


class QueueQuerySerializer(StrictSerializer):
    """The queue's filters, from the query string."""

    deployment = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    level = serializers.ChoiceField(choices=[1, 2], required=False)
    limit = serializers.IntegerField(required=False, min_value=1)
    offset = serializers.IntegerField(required=False, min_value=0)


class ReleaseSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=500)


class ClaimNextSerializer(StrictSerializer):
    deployment = StrictIntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Only from this deployment"
    )
    level = serializers.ChoiceField(
        choices=[1, 2], required=False, help_text="1: first reviews, 2: appeals"
    )


class DecideSerializer(StrictSerializer):
    decision = StrictCharField(help_text="confirm or override")
    reason = StrictCharField(allow_blank=True, max_length=2000, help_text="Why (1-2000 characters)")
    output = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='The corrected output of an override, a JSON object (e.g. {"label": "approved"})',
    )
