"""Translation between JSON and the submission, outcome and appeal endpoints. Shapes and types
only: every rule of a submission is reviews.submission's (`clean`, called from `validate` so the
API answers 400 naming the field), and the outcome's shape is reviews.callbacks.body_of, the
same dict the callback sends. Nothing here ever reads or echoes an input summary."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.api import StrictCharField, StrictIntegerField, StrictSerializer
from core.errors import ValidationFailed

from .. import appeals, callbacks, submission
from ..models import Decision, ReviewItem, ReviewMode, ReviewReason, ReviewStatus


def outcome_url(item: ReviewItem) -> str:
    """Where the caller reads the outcome: the URL the serving process hands out too
    (MODELPLANE_REVIEW_URL + ref + "/")."""
    return f"{settings.PORTAL_URL}/api/v1/reviews/{item.ref}/"


class SubmissionSerializer(StrictSerializer):
    """POST /api/v1/reviews/: one prediction for a person to review."""

    ref = StrictCharField(
        required=False,
        max_length=64,
        help_text='Your handle of the item, "rv_" and 16 to 60 of [A-Za-z0-9_-]; made for you '
        "when absent. Sending the same ref again returns the same item (safe to retry).",
    )
    deployment = StrictIntegerField(help_text="The deployment that served the prediction")
    model = StrictCharField(
        max_length=submission.MAX_MODEL_NAME, help_text="The deployment's model, by name"
    )
    version = StrictIntegerField(min_value=1, help_text="The model version that predicted")
    track = StrictCharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=submission.MAX_TRACK,
        help_text="stable, canary, ...",
    )
    request_id = StrictCharField(
        max_length=submission.MAX_REQUEST_ID,
        trim_whitespace=False,
        help_text="The inference request's id: unique per deployment",
    )
    mode = serializers.ChoiceField(choices=ReviewMode.choices)
    reason = serializers.ChoiceField(choices=ReviewReason.choices)
    prediction = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        allow_empty=False,
        help_text=f"The model's output, at most {submission.MAX_PREDICTION_BYTES} bytes of JSON",
    )
    confidence = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    input_summary = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        allow_null=True,
        help_text=f"The fields the model's package declares, flat: at most "
        f"{submission.MAX_SUMMARY_KEYS} names, each a string (at most "
        f"{submission.MAX_SUMMARY_STRING} characters), a number, true/false or null. Shown to "
        "the team's reviewers only; never logged; deleted after the retention period.",
    )
    explanation = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        allow_null=True,
        help_text=f"The model's explanation, if its package gives one (at most "
        f"{submission.MAX_EXPLANATION_BYTES} bytes of JSON)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The service's own check of the raw values (the fields above only parse), so the
        numbers and rules are written once; its error becomes a 400 on the field it names."""
        raw = {name: self.initial_data[name] for name in attrs if name in self.initial_data}
        deployment = raw.pop("deployment")
        try:
            cleaned = submission.clean(raw)
        except ValidationFailed as exc:
            raise serializers.ValidationError(
                {exc.field or "non_field_errors": [exc.reason]}
            ) from None
        return {"deployment": deployment, **cleaned}


class SubmissionResultSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="GET it for the outcome")

    class Meta:
        model = ReviewItem
        fields = ["ref", "status", "level", "mode", "sla_deadline", "url"]
        read_only_fields = fields

    def get_url(self, item: ReviewItem) -> str:
        return outcome_url(item)


class AppealOfSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    appealed_decision = serializers.ChoiceField(choices=Decision.choices)
    appealed_output = serializers.JSONField(allow_null=True)


class OutcomeSerializer(serializers.Serializer):
    """GET /api/v1/reviews/{ref}/, and the body of the callback: the fields below document
    reviews.callbacks.body_of, which writes the values (never the input summary)."""

    ref = serializers.CharField()
    deployment = serializers.IntegerField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    track = serializers.CharField()
    request_id = serializers.CharField()
    mode = serializers.ChoiceField(choices=ReviewMode.choices)
    reason = serializers.ChoiceField(choices=ReviewReason.choices)
    status = serializers.ChoiceField(choices=ReviewStatus.choices)
    level = serializers.IntegerField(help_text="1, or 2 once appealed (its decision is final)")
    decision = serializers.ChoiceField(choices=Decision.choices, allow_null=True)
    output = serializers.JSONField(
        allow_null=True,
        help_text="The final output: the prediction when confirmed, the corrected output when "
        "overridden; null until decided",
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    sla_deadline = serializers.DateTimeField()
    appealable = serializers.BooleanField(
        help_text="Decided at level 1 and not appealed yet: POST .../appeal is open"
    )
    appeal = AppealOfSerializer(
        allow_null=True, help_text="The appeal, with the decision it appealed"
    )

    def to_representation(self, instance: ReviewItem) -> dict[str, Any]:
        return callbacks.body_of(instance)


class AppealSerializer(StrictSerializer):
    statement = StrictCharField(
        max_length=appeals.MAX_STATEMENT,
        help_text="The subject's statement, relayed as written: 1 to 4000 characters",
    )
