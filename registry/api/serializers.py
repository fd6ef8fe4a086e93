"""Translation between JSON and the registry domain. No rules here beyond shapes and types:
the services decide."""

from __future__ import annotations

from rest_framework import serializers

from controlplane.api import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    StrictSlugField,
)
from registry.models import (
    Alias,
    ApiToken,
    AuditEvent,
    Membership,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    Role,
    Team,
    TokenScope,
    VersionStatus,
)


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["slug", "name", "description", "created_at"]
        read_only_fields = ["created_at"]


class TeamCreateSerializer(StrictSerializer):
    slug = StrictSlugField(max_length=63)
    name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    description = StrictCharField(required=False, allow_blank=True, default="")


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "is_approver", "is_on_call", "is_reviewer", "created_at"]


class MembershipWriteSerializer(StrictSerializer):
    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)
    is_approver = serializers.BooleanField(required=False)
    is_on_call = serializers.BooleanField(required=False)
    is_reviewer = serializers.BooleanField(required=False)


class TokenSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "team",
            "name",
            "prefix",
            "scopes",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]


class TokenCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices), allow_empty=False
    )
    expires_at = serializers.DateTimeField()


class IssuedTokenSerializer(TokenSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Shown once; store it in your CI secrets."
    )

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "secret"]


class ModelSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    latest_version = serializers.IntegerField(source="last_version_number", read_only=True)

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "team",
            "risk_tier",
            "description",
            "tags",
            "latest_version",
            "created_at",
            "updated_at",
        ]


class ModelCreateSerializer(StrictSerializer):
    name = StrictSlugField(max_length=63)
    team = StrictSlugField(max_length=63)
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, default=RiskTier.MEDIUM)
    description = StrictCharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=StrictCharField(max_length=64), required=False, default=list)


class ModelUpdateSerializer(StrictSerializer):
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices, required=False)
    description = StrictCharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=StrictCharField(max_length=64), required=False)


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.CharField(source="created_by_label", read_only=True)
    aliases = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "artifact_uri",
            "artifact_digest",
            "digest_verified",
            "image",
            "framework",
            "config",
            "input_schema",
            "output_schema",
            "example_requests",
            "training_metrics",
            "baseline_profile",
            "source_commit",
            "ci_run_url",
            "training_data_ref",
            "status",
            "tags",
            "aliases",
            "created_by",
            "created_at",
        ]


class VersionCreateSerializer(StrictSerializer):
    artifact_uri = StrictCharField(max_length=2000)
    artifact_digest = StrictCharField(max_length=71, help_text='"sha256:<64 hex>"')
    image = StrictCharField(max_length=500, required=False, allow_blank=True, default="")
    framework = StrictCharField(max_length=50, required=False, allow_blank=True, default="")
    config = serializers.JSONField(required=False, default=dict)
    input_schema = serializers.JSONField(help_text="JSON Schema of one input instance")
    output_schema = serializers.JSONField(required=False, default=dict)
    example_requests = serializers.JSONField(required=False, default=list)
    training_metrics = serializers.JSONField(required=False, default=dict)
    baseline_profile = serializers.JSONField(required=False, default=dict)
    source_commit = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    ci_run_url = serializers.URLField(max_length=2000, required=False, allow_blank=True, default="")
    training_data_ref = StrictCharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    tags = serializers.ListField(child=StrictCharField(max_length=64), required=False, default=list)


class VersionUpdateSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=VersionStatus.choices, required=False)
    tags = serializers.ListField(child=StrictCharField(max_length=64), required=False)


class AliasSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)

    class Meta:
        model = Alias
        fields = ["model", "name", "version", "updated_at"]


class AliasWriteSerializer(StrictSerializer):
    version = StrictIntegerField(min_value=1)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_type",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "before",
            "after",
            "reason",
            "request_id",
            "remote_addr",
        ]
