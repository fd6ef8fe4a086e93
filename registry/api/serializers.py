"""Translation between JSON and the registry domain. No rules here beyond shapes and types:
the services decide."""

from __future__ import annotations

from rest_framework import serializers

from core.api import (
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    StrictSlugField,
)
from registry.models import Alias, ModelVersion, RegisteredModel, RiskTier, VersionStatus


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


_DATETIME = serializers.DateTimeField()


class VersionSerializer(serializers.ModelSerializer):
    """A version as the API answers it. The declared fields describe it (OpenAPI); the answer
    itself is built by `to_representation` below, field for field the same (a test compares the
    two), because DRF's generic walk over 21 fields was the largest cost of reading a version and
    of a page of 50 (bench/registry_api.py)."""

    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.CharField(source="created_by_label", read_only=True)
    aliases = serializers.ListField(
        child=serializers.CharField(), source="alias_names", read_only=True
    )

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

    def to_representation(self, instance: ModelVersion) -> dict:
        aliases = getattr(instance, "alias_names", None)
        if aliases is None:
            aliases = sorted(alias.name for alias in instance.aliases.all())
        created_by = getattr(instance, "creator_label", None)  # the API selectors' annotation
        if created_by is None:
            created_by = instance.created_by_label
        return {
            "model": instance.model.name,
            "number": instance.number,
            "artifact_uri": instance.artifact_uri,
            "artifact_digest": instance.artifact_digest,
            "digest_verified": instance.digest_verified,
            "image": instance.image,
            "framework": instance.framework,
            "config": instance.config,
            "input_schema": instance.input_schema,
            "output_schema": instance.output_schema,
            "example_requests": instance.example_requests,
            "training_metrics": instance.training_metrics,
            "baseline_profile": instance.baseline_profile,
            "source_commit": instance.source_commit,
            "ci_run_url": instance.ci_run_url,
            "training_data_ref": instance.training_data_ref,
            "status": instance.status,
            "tags": instance.tags,
            "aliases": aliases,
            "created_by": created_by,
            "created_at": _DATETIME.to_representation(instance.created_at),
        }


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
