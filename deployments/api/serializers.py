"""Translation between JSON and the deployments domain. Shapes and types only: the services
decide what is allowed, and the selectors compute gates, paths and rollback targets."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import StrictCharField, StrictIntegerField, StrictSerializer, StrictSlugField
from deployments import engine, selectors
from deployments.engine import StepAction, StepPhase, StepTarget
from deployments.models import (
    Approval,
    Deployment,
    DeploymentConfig,
    Environment,
    MetricsKind,
    Release,
    ReleaseStep,
    Rollback,
    RuntimeKind,
    Strategy,
)
from deployments.validation import CONFIG_FIELDS

# Environments ---------------------------------------------------------------------------------


class EnvironmentSerializer(serializers.ModelSerializer):
    """What anyone signed in may know of an environment: never its runtime_config (connection
    details) nor its metrics URL."""

    staging = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    namespace = serializers.CharField(read_only=True)

    class Meta:
        model = Environment
        fields = [
            "name",
            "description",
            "runtime_kind",
            "namespace",
            "metrics_kind",
            "metrics_scrape_interval_seconds",
            "staging",
            "is_production",
            "vcpu_hour_price",
            "gib_hour_price",
            "gpu_hour_price",
            "created_at",
        ]


class EnvironmentCreateSerializer(StrictSerializer):
    name = StrictSlugField(max_length=63)
    description = StrictCharField(required=False, allow_blank=True, default="")
    runtime_kind = serializers.ChoiceField(choices=RuntimeKind.choices)
    runtime_config = serializers.DictField(
        required=False,
        default=dict,
        help_text="Paths and names only (kubeconfig path, context, namespace), never credentials.",
    )
    metrics_kind = serializers.ChoiceField(choices=MetricsKind.choices, default=MetricsKind.NONE)
    metrics_url = serializers.URLField(required=False, allow_blank=True, default="")
    metrics_scrape_interval_seconds = serializers.FloatField(
        required=False,
        default=15.0,
        help_text="How often the metrics source scrapes; analysis windows must hold 20 samples "
        "of two scrape intervals each.",
    )
    staging = StrictSlugField(max_length=63, required=False, allow_null=True, default=None)
    is_production = serializers.BooleanField(required=False, default=False)
    vcpu_hour_price = serializers.DecimalField(
        max_digits=10, decimal_places=5, required=False, default=0
    )
    gib_hour_price = serializers.DecimalField(
        max_digits=10, decimal_places=5, required=False, default=0
    )
    gpu_hour_price = serializers.DecimalField(
        max_digits=10, decimal_places=5, required=False, default=0
    )


# Deployments ----------------------------------------------------------------------------------


class DeploymentConfigSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by_label", read_only=True)

    class Meta:
        model = DeploymentConfig
        fields = ["revision", *CONFIG_FIELDS, "created_by", "created_at"]


class RollbackSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    release = serializers.IntegerField(source="release_id", read_only=True, allow_null=True)
    from_version = serializers.IntegerField(
        source="from_version.number", read_only=True, allow_null=True
    )
    to_version = serializers.IntegerField(source="to_version.number", read_only=True)
    actor = serializers.CharField(source="actor_label", read_only=True)
    # A plain string in the schema: an enum here would collide with the release's `state` enum.
    state = serializers.CharField(read_only=True, help_text="pending | done | failed")

    class Meta:
        model = Rollback
        fields = [
            "id",
            "deployment",
            "release",
            "from_version",
            "to_version",
            "state",
            "actor",
            "reason",
            "automatic",
            "evidence",
            "created_at",
            "completed_at",
        ]


class DeploymentSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True)
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    stable_version = serializers.IntegerField(
        source="stable_version.number", read_only=True, allow_null=True
    )
    previous_stable_version = serializers.IntegerField(
        source="previous_stable_version.number", read_only=True, allow_null=True
    )
    effective_strategy_params = serializers.DictField(read_only=True)
    config = DeploymentConfigSerializer(read_only=True, allow_null=True)
    active_release = serializers.SerializerMethodField()
    last_rollback = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "model",
            "team",
            "environment",
            "strategy",
            "strategy_params",
            "effective_strategy_params",
            "stable_version",
            "previous_stable_version",
            "promoted_at",
            "config",
            "active_release",
            "last_rollback",
            "rollback_notes",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_active_release(self, deployment: Deployment) -> int | None:
        release = selectors.active_release(deployment)
        return release.pk if release else None

    @extend_schema_field(RollbackSerializer(allow_null=True))
    def get_last_rollback(self, deployment: Deployment) -> dict[str, Any] | None:
        rollback = selectors.last_rollback(deployment)
        return RollbackSerializer(rollback).data if rollback else None


class ConfigFieldsSerializer(StrictSerializer):
    """The fields of a config revision; each is optional and only the ones sent change."""

    replicas = StrictIntegerField(required=False)
    cpu_request = StrictCharField(required=False, max_length=20)
    cpu_limit = StrictCharField(required=False, max_length=20)
    memory_request = StrictCharField(required=False, max_length=20)
    memory_limit = StrictCharField(required=False, max_length=20)
    gpu = StrictIntegerField(required=False, min_value=0)
    min_replicas = StrictIntegerField(required=False, allow_null=True)
    max_replicas = StrictIntegerField(required=False, allow_null=True)
    env = serializers.DictField(
        required=False, help_text="Public settings only: a credential-looking name is refused."
    )
    secret_refs = serializers.ListField(
        child=serializers.DictField(child=StrictCharField()),
        required=False,
        help_text="[{env_name, secret_name, secret_key}]: references, never values.",
    )
    slo_latency_p95_ms = StrictIntegerField(required=False, min_value=1)
    slo_error_rate = serializers.FloatField(required=False)
    slo_availability = serializers.FloatField(required=False)
    drift_warn = serializers.FloatField(required=False)
    drift_alert = serializers.FloatField(required=False)
    monthly_budget = serializers.DecimalField(
        max_digits=12, decimal_places=2, required=False, allow_null=True
    )
    metrics_queries = serializers.DictField(
        required=False,
        help_text="PromQL template overrides by name, and an optional business KPI under `kpi`: "
        "{name, unit, good_direction: up|down, query}.",
    )
    review_policy = serializers.DictField(
        required=False,
        help_text="Which predictions a person reviews and whether they are held: {mode: "
        "held|audited, all, confidence_below, sample_percent, classes, sla_minutes, "
        "business_hours, claim_minutes, callback_url, callback_secret_env, "
        "min_decided_for_gate, max_override_rate_increase}; {} reviews nothing (docs/reviews.md).",
    )


class DeploymentCreateSerializer(ConfigFieldsSerializer):
    model = StrictSlugField(max_length=63)
    environment = StrictSlugField(max_length=63)
    name = StrictCharField(
        max_length=50, required=False, help_text="DNS label; defaults to the model's name."
    )
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.CANARY)
    strategy_params = serializers.DictField(required=False, default=dict)


class DeploymentUpdateSerializer(ConfigFieldsSerializer):
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    strategy_params = serializers.DictField(required=False)
    rollback_notes = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=4000,
        help_text="A short runbook shown on the rollback confirmation and on incidents.",
    )


class RollbackRequestSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


# Releases -------------------------------------------------------------------------------------


class ReleaseSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    deployment_name = serializers.CharField(source="deployment.name", read_only=True)
    environment = serializers.CharField(source="deployment.environment.name", read_only=True)
    model = serializers.CharField(source="deployment.model.name", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    from_version = serializers.IntegerField(
        source="from_version.number", read_only=True, allow_null=True
    )
    author = serializers.CharField(source="author_label", read_only=True)
    is_terminal = serializers.BooleanField(read_only=True)

    class Meta:
        model = Release
        fields = [
            "id",
            "deployment",
            "deployment_name",
            "environment",
            "model",
            "version",
            "from_version",
            "strategy",
            "state",
            "status_reason",
            "is_terminal",
            "step_index",
            "required_approvals",
            "traffic",
            "author",
            "created_at",
            "updated_at",
            "finished_at",
        ]


class PlanStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    phase = serializers.ChoiceField(choices=[p.value for p in StepPhase])
    action = serializers.ChoiceField(choices=[a.value for a in StepAction])
    target = serializers.ChoiceField(choices=[t.value for t in StepTarget])
    label = serializers.CharField()
    status = serializers.CharField(help_text="done | current | pending | failed")
    current = serializers.BooleanField()
    params = serializers.DictField(help_text="The step as frozen in the plan (versions, weights)")


class ReleaseStepSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = ReleaseStep
        fields = [
            "id",
            "kind",
            "plan_index",
            "from_state",
            "to_state",
            "outcome",
            "actor",
            "reason",
            "evidence",
            "created_at",
        ]


class ApprovalSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Approval
        fields = ["user", "decision", "comment", "created_at"]


class GateSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    status = serializers.CharField(help_text="pending | passed | failed | skipped")
    detail = serializers.CharField(allow_blank=True)
    evidence = serializers.DictField()


class WeightSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    percent = serializers.IntegerField()


class ReleaseDetailSerializer(ReleaseSerializer):
    plan = serializers.SerializerMethodField()
    steps = ReleaseStepSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    gates = serializers.SerializerMethodField()
    weights = serializers.SerializerMethodField()
    config_revision = serializers.IntegerField(source="config.revision", read_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = [
            *ReleaseSerializer.Meta.fields,
            "config_revision",
            "weights",
            "plan",
            "gates",
            "approvals",
            "steps",
        ]

    @extend_schema_field(PlanStepSerializer(many=True))
    def get_plan(self, release: Release) -> list[dict[str, Any]]:
        path = selectors.release_path(release)
        steps = engine.steps_of(release)
        return [
            {
                "index": stop.index,
                "phase": step.phase.value,
                "action": step.action.value,
                "target": step.target.value,
                "label": stop.label,
                "status": stop.status,
                "current": stop.status == "current",
                "params": {
                    key: value
                    for key, value in step.to_json().items()
                    if key not in ("phase", "action", "target")
                },
            }
            for stop, step in zip(path, steps, strict=True)
        ]

    @extend_schema_field(GateSerializer(many=True))
    def get_gates(self, release: Release) -> list[dict[str, Any]]:
        return [
            {
                "name": gate.name,
                "label": gate.label,
                "status": gate.status,
                "detail": gate.detail,
                "evidence": gate.evidence,
            }
            for gate in selectors.release_gates(release)
        ]

    @extend_schema_field(WeightSerializer(many=True))
    def get_weights(self, release: Release) -> list[dict[str, int]]:
        return [
            {"version": version, "percent": percent}
            for version, percent in selectors.traffic_weights(release)
        ]


class ReleaseCreateSerializer(StrictSerializer):
    deployment = StrictIntegerField(min_value=1, help_text="Deployment id")
    version = StrictIntegerField(min_value=1, help_text="Version number of the deployed model")


class ReleaseDecisionSerializer(StrictSerializer):
    comment = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Why: optional to approve; a rejection without one is refused (422, comment).",
    )


class ReleaseActionSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)
