"""Translation between JSON and alerts, schedules, escalation policies and incidents. Shapes and
types only: alerts.lifecycle, alerts.services and alerts.incidents decide what is allowed."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import StrictCharField, StrictIntegerField, StrictSerializer, StrictSlugField
from core.clock import now as clock_now

from .. import incidents
from ..models import (
    Alert,
    AlertEvent,
    Delivery,
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
    Incident,
    IncidentStatus,
    LayerMember,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
    Severity,
)
from ..services import MAX_REPEAT, MAX_WAIT_MINUTES, MIN_WAIT_MINUTES


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its offset: a handoff or a silence given without one would be read
    in the server's time zone, which is nobody's."""

    default_error_messages = {
        "naive": "Give a time zone offset (e.g. 2026-03-29T09:00:00+02:00 or Z).",
        "not_a_string": "Must be an ISO 8601 string, not {kind}.",
    }

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            self.fail("not_a_string", kind=type(value).__name__)
        parsed = parse_datetime(value)
        if parsed is not None and timezone.is_naive(parsed):
            self.fail("naive")
        return super().to_internal_value(value)


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


# Alerts ---------------------------------------------------------------------------------------


class AlertSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    model = serializers.CharField(source="model.name", read_only=True, allow_null=True)
    deployment = serializers.IntegerField(source="deployment_id", read_only=True, allow_null=True)
    deployment_name = serializers.CharField(
        source="deployment.name", read_only=True, allow_null=True
    )
    environment = serializers.CharField(
        source="deployment.environment.name", read_only=True, allow_null=True
    )
    release = serializers.IntegerField(source="release_id", read_only=True, allow_null=True)
    incident = serializers.IntegerField(source="incident_id", read_only=True, allow_null=True)
    assignee = serializers.CharField(source="assignee.username", read_only=True, allow_null=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, allow_null=True
    )
    needs_triage = serializers.BooleanField(read_only=True)
    is_silenced = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "team",
            "source",
            "fingerprint",
            "rule",
            "track",
            "severity",
            "status",
            "title",
            "summary",
            "model",
            "deployment",
            "deployment_name",
            "environment",
            "release",
            "incident",
            "assignee",
            "needs_triage",
            "labels",
            "annotations",
            "generator_url",
            "starts_at",
            "last_seen_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "silenced_until",
            "is_silenced",
            "reopened_count",
            "escalation_step",
            "escalation_round",
            "next_escalation_at",
        ]

    @extend_schema_field(serializers.BooleanField())
    def get_is_silenced(self, alert: Alert) -> bool:
        return alert.is_silenced(clock_now())


class AlertEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AlertEvent
        fields = ["id", "kind", "at", "actor", "text", "data"]


class DeliverySerializer(serializers.ModelSerializer):
    """One notification and its outcome. `last_error` never holds a URL, a body or a secret."""

    user = serializers.CharField(source="user.username", read_only=True, allow_null=True)
    channel = serializers.CharField(source="channel.name", read_only=True, allow_null=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "change",
            "kind",
            "recipient",
            "user",
            "channel",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
        ]


class AlertDetailSerializer(AlertSerializer):
    events = serializers.SerializerMethodField()
    deliveries = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "evidence", "events", "deliveries"]

    @extend_schema_field(AlertEventSerializer(many=True))
    def get_events(self, alert: Alert) -> list[dict[str, Any]]:
        return AlertEventSerializer(self.context["events"], many=True).data

    @extend_schema_field(DeliverySerializer(many=True))
    def get_deliveries(self, alert: Alert) -> list[dict[str, Any]]:
        return DeliverySerializer(self.context["deliveries"], many=True).data


class AlertAcknowledgeSerializer(StrictSerializer):
    note = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


class AlertResolveSerializer(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


class AlertSilenceSerializer(StrictSerializer):
    until = AwareDateTimeField(
        help_text="No escalation or notification until then (at most 7 days)"
    )
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


class AlertReassignSerializer(StrictSerializer):
    assignee = StrictCharField(max_length=150, help_text="Username of an active team member")
    reason = StrictCharField(max_length=2000, allow_blank=True, help_text="Why it changes hands")


class AlertNoteSerializer(StrictSerializer):
    text = StrictCharField(max_length=4000, allow_blank=True)


# Schedules ------------------------------------------------------------------------------------


class LayerSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = ScheduleLayer
        fields = [
            "id",
            "name",
            "position",
            "rotation_start",
            "shift_hours",
            "active_from",
            "active_until",
            "ends_at",
            "members",
        ]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_members(self, layer: ScheduleLayer) -> list[str]:
        members: list[LayerMember] = sorted(layer.members.all(), key=lambda m: m.position)
        return [m.user.get_username() for m in members]


class OverrideSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    created_by = serializers.CharField(source="created_by_label", read_only=True)

    class Meta:
        model = ScheduleOverride
        fields = ["id", "user", "starts_at", "ends_at", "reason", "created_by", "created_at"]


class ScheduleSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    layers = serializers.SerializerMethodField()
    overrides = serializers.SerializerMethodField(
        help_text="Overrides that have not ended yet, soonest first"
    )

    class Meta:
        model = Schedule
        fields = ["id", "team", "name", "time_zone", "description", "layers", "overrides"]

    @extend_schema_field(LayerSerializer(many=True))
    def get_layers(self, schedule: Schedule) -> list[dict[str, Any]]:
        layers = sorted(schedule.layers.all(), key=lambda layer: (layer.position, layer.pk))
        return LayerSerializer(layers, many=True).data

    @extend_schema_field(OverrideSerializer(many=True))
    def get_overrides(self, schedule: Schedule) -> list[dict[str, Any]]:
        now = clock_now()
        current = sorted(
            (o for o in schedule.overrides.all() if o.ends_at > now), key=lambda o: o.starts_at
        )
        return OverrideSerializer(current, many=True).data


class LayerWriteSerializer(StrictSerializer):
    name = StrictCharField(max_length=100)
    position = StrictIntegerField(
        required=False, min_value=0, max_value=1000, help_text="Higher wins where it covers"
    )
    rotation_start = AwareDateTimeField(
        help_text="The first handoff; later ones keep its local time"
    )
    shift_hours = StrictIntegerField(min_value=1, max_value=24 * 366, default=168)
    members = serializers.ListField(
        child=StrictCharField(max_length=150),
        allow_empty=False,
        help_text="Usernames of active team members, in turn order",
    )
    active_from = serializers.TimeField(
        required=False, allow_null=True, default=None, help_text="Daily window start (local)"
    )
    active_until = serializers.TimeField(
        required=False, allow_null=True, default=None, help_text="Daily window end (local)"
    )
    ends_at = AwareDateTimeField(required=False, allow_null=True, default=None)


class LayersWriteSerializer(StrictSerializer):
    layers = LayerWriteSerializer(many=True, help_text="Replace all layers of the schedule")


class ScheduleCreateSerializer(StrictSerializer):
    team = StrictSlugField(max_length=63)
    name = StrictCharField(max_length=100)
    time_zone = StrictCharField(max_length=64, default="UTC", help_text="A zoneinfo name")
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)
    layers = LayerWriteSerializer(many=True, required=False, default=list)


class ScheduleUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, required=False)
    time_zone = StrictCharField(max_length=64, required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=2000)


class OverrideCreateSerializer(StrictSerializer):
    user = StrictCharField(max_length=150, help_text="Username of an active team member")
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


class OnCallQuerySerializer(StrictSerializer):
    at = AwareDateTimeField(required=False, help_text="Default: now")


class ShiftSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    users = serializers.ListField(child=serializers.CharField(), help_text="Empty in a gap")
    source = serializers.CharField(help_text='"layer:<name>", "override" or "gap"')
    is_gap = serializers.BooleanField()


class OnCallSerializer(serializers.Serializer):
    schedule = serializers.IntegerField()
    at = serializers.DateTimeField()
    now = ShiftSerializer(allow_null=True, help_text="The shift at `at`")
    next = ShiftSerializer(allow_null=True, help_text="The shift after it")


def shift_data(shift: Any) -> dict[str, Any] | None:
    if shift is None:
        return None
    return {
        "start": shift.start,
        "end": shift.end,
        "users": [u.get_username() for u in shift.users],
        "source": shift.source,
        "is_gap": not shift.users,
    }


# Escalation policies --------------------------------------------------------------------------


class StepSerializer(serializers.ModelSerializer):
    schedule = serializers.IntegerField(source="schedule_id", read_only=True, allow_null=True)
    schedule_name = serializers.CharField(source="schedule.name", read_only=True, allow_null=True)
    user = serializers.CharField(source="user.username", read_only=True, allow_null=True)

    class Meta:
        model = EscalationStep
        fields = ["position", "target", "schedule", "schedule_name", "user", "wait_minutes"]


class EscalationPolicySerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    steps = serializers.SerializerMethodField()

    class Meta:
        model = EscalationPolicy
        fields = ["id", "team", "name", "description", "repeat", "is_default", "steps"]

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, policy: EscalationPolicy) -> list[dict[str, Any]]:
        steps = sorted(policy.steps.all(), key=lambda step: step.position)
        return StepSerializer(steps, many=True).data


class StepWriteSerializer(StrictSerializer):
    target = serializers.ChoiceField(choices=EscalationTarget.choices)
    schedule = StrictIntegerField(
        required=False, allow_null=True, default=None, help_text="Schedule id (target schedule)"
    )
    user = StrictCharField(
        required=False, allow_null=True, default=None, help_text="Username (target user)"
    )
    wait_minutes = StrictIntegerField(
        min_value=MIN_WAIT_MINUTES,
        max_value=MAX_WAIT_MINUTES,
        default=15,
        help_text="Wait for an acknowledgement before the next step",
    )


class EscalationPolicyCreateSerializer(StrictSerializer):
    team = StrictSlugField(max_length=63)
    name = StrictCharField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)
    repeat = StrictIntegerField(min_value=0, max_value=MAX_REPEAT, default=0)
    is_default = serializers.BooleanField(default=False)
    steps = StepWriteSerializer(many=True)


class EscalationPolicyUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=2000)
    repeat = StrictIntegerField(min_value=0, max_value=MAX_REPEAT, required=False)
    is_default = serializers.BooleanField(required=False)
    steps = StepWriteSerializer(many=True, required=False, help_text="Replace all steps")


# Incidents ------------------------------------------------------------------------------------


class IncidentAlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = Alert
        fields = ["id", "title", "severity", "status", "starts_at"]


class IncidentSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True)
    deployment = serializers.IntegerField(source="deployment_id", read_only=True, allow_null=True)
    deployment_name = serializers.CharField(
        source="deployment.name", read_only=True, allow_null=True
    )
    opened_by = serializers.CharField(source="opened_by_label", read_only=True)
    alerts = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "id",
            "team",
            "title",
            "severity",
            "status",
            "owner",
            "deployment",
            "deployment_name",
            "opened_by",
            "opened_at",
            "mitigated_at",
            "closed_at",
            "alerts",
        ]

    @extend_schema_field(IncidentAlertSerializer(many=True))
    def get_alerts(self, incident: Incident) -> list[dict[str, Any]]:
        alerts = sorted(incident.alerts.all(), key=lambda alert: alert.pk)
        return IncidentAlertSerializer(alerts, many=True).data


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="e.g. incident.note, alert.fired, release.analysis")
    actor = serializers.CharField(source="actor_label")
    text = serializers.CharField()
    link = serializers.CharField(allow_null=True, help_text="Portal path, e.g. /releases/7/")


class IncidentDetailSerializer(IncidentSerializer):
    summary = serializers.CharField(read_only=True)
    rollback_notes = serializers.CharField(
        source="deployment.rollback_notes",
        read_only=True,
        allow_null=True,
        help_text="The deployment's rollback runbook",
    )
    timeline = serializers.SerializerMethodField()

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "summary", "rollback_notes", "timeline"]

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, incident: Incident) -> list[dict[str, Any]]:
        return TimelineEntrySerializer(incidents.timeline(incident), many=True).data


class IncidentCreateSerializer(StrictSerializer):
    alert = StrictIntegerField(
        required=False,
        min_value=1,
        help_text="Open from this alert (one click): the rest is taken from it",
    )
    team = StrictSlugField(max_length=63, required=False, help_text="By hand: the team")
    title = StrictCharField(max_length=300, required=False, default="")
    severity = serializers.ChoiceField(choices=Severity.choices, required=False, default="")
    deployment = StrictIntegerField(
        required=False, min_value=1, help_text="By hand: a deployment of that team (optional)"
    )


class IncidentNoteSerializer(StrictSerializer):
    text = StrictCharField(max_length=4000, allow_blank=True)


class IncidentStatusSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=IncidentStatus.choices)
    summary = StrictCharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=incidents.MAX_SUMMARY,
        help_text="Required to close: what happened and what to keep for next time",
    )


class IncidentOwnerSerializer(StrictSerializer):
    owner = StrictCharField(max_length=150, help_text="Username of an active team member")
    reason = StrictCharField(max_length=2000, allow_blank=True)


class IncidentAttachSerializer(StrictSerializer):
    alert = StrictIntegerField(min_value=1)
