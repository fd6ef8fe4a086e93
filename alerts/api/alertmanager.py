"""Alertmanager's webhook receiver (`webhook_config`, payload version 4): check the token, parse
the body strictly, hand it to `alerts.alertmanager.ingest`. Shapes and types only here; what an
alert means (placement, deduplication, reopening) is decided in the domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from alerts import alertmanager
from alerts.models import AlertStatus
from core.api import StrictCharField, StrictIntegerField
from identity.audit import actor_of

# Bounds on one post. Alertmanager's `max_alerts` (docs/alertmanager.md) keeps a post under
# MAX_ALERTS; the rest arrive in later posts and `truncatedAlerts` counts them.
MAX_ALERTS = 500
MAX_PAIRS = 64  # labels or annotations per set
MAX_NAME = 128
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION_VALUE = 8192
MAX_URL = 4096  # a generatorURL carries the rule's expression; it is stored cut to 1000
# Go's zero time: Alertmanager's endsAt of an alert that has not ended.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class Rfc3339Field(serializers.DateTimeField):
    """An RFC 3339 time as Alertmanager writes it (nanoseconds kept to microseconds): a string
    with a UTC offset, never a number or a naive time. With `zero_is_none`, Go's zero time
    (`0001-01-01T00:00:00Z`, "not ended") reads as None."""

    default_error_messages = {
        "not_a_string": "Must be an RFC 3339 time string, not {kind}.",
        "invalid_time": "Not an RFC 3339 time: {value!r}.",
        "naive_time": "The time needs a UTC offset (e.g. Z or +02:00).",
        "zero_time": "The zero time is not a time here.",
    }

    def __init__(self, *, zero_is_none: bool = False, **kwargs: Any):
        self.zero_is_none = zero_is_none
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> datetime | None:  # type: ignore[override]
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        try:
            value = parse_datetime(data.strip()) if len(data) <= 64 else None
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid_time", value=data[:64])
        if value.tzinfo is None:
            self.fail("naive_time")
        try:
            value = value.astimezone(UTC)
        except (OverflowError, ValueError):
            self.fail("invalid_time", value=data[:64])
        if value == GO_ZERO_TIME:
            if self.zero_is_none:
                return None
            self.fail("zero_time")
        return value


class PairsField(serializers.DictField):
    """A label or annotation set: string names to string values, bounded in count and size."""

    default_error_messages = {
        "too_many": "At most {limit} entries.",
        "name_size": "Names are 1 to {limit} characters; {name!r} is not.",
    }

    def __init__(self, *, value_limit: int, **kwargs: Any):
        kwargs.setdefault(
            "child",
            StrictCharField(allow_blank=True, trim_whitespace=False, max_length=value_limit),
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        if isinstance(data, dict):
            if len(data) > MAX_PAIRS:
                self.fail("too_many", limit=MAX_PAIRS)
            for name in data:
                if not 0 < len(name) <= MAX_NAME:
                    self.fail("name_size", limit=MAX_NAME, name=name[:MAX_NAME])
        return super().to_internal_value(data)


def _labels() -> PairsField:
    return PairsField(value_limit=MAX_LABEL_VALUE)


def _annotations() -> PairsField:
    return PairsField(value_limit=MAX_ANNOTATION_VALUE)


class AlertmanagerAlertSerializer(serializers.Serializer):
    """One alert of a notification. Fields Alertmanager may add later are ignored, not refused:
    version 4 has grown fields without a new version (`truncatedAlerts`), and a refused post is
    an alert lost (Alertmanager does not retry a 4xx). Field names are Alertmanager's own."""

    status = serializers.ChoiceField(
        choices=[AlertStatus.FIRING.value, AlertStatus.RESOLVED.value],
        help_text="This alert's own status; the group's may differ.",
    )
    labels = _labels()
    annotations = _annotations()
    startsAt = Rfc3339Field()
    endsAt = Rfc3339Field(zero_is_none=True, allow_null=False)
    generatorURL = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=MAX_URL)
    fingerprint = StrictCharField(
        max_length=128, help_text="Alertmanager's identity of the alert (its label set's hash)."
    )


class AlertmanagerPayloadSerializer(serializers.Serializer):
    """Alertmanager's webhook body, version 4 (prometheus.io/docs/alerting/latest/configuration,
    `webhook_config`)."""

    version = StrictCharField(help_text='Always "4".')
    groupKey = StrictCharField(max_length=8192, trim_whitespace=False)
    truncatedAlerts = StrictIntegerField(min_value=0)
    status = serializers.ChoiceField(
        choices=[AlertStatus.FIRING.value, AlertStatus.RESOLVED.value],
        help_text="The group's status: firing while any of its alerts fires.",
    )
    receiver = StrictCharField(allow_blank=True, max_length=1000)
    groupLabels = _labels()
    commonLabels = _labels()
    commonAnnotations = _annotations()
    externalURL = StrictCharField(allow_blank=True, max_length=MAX_URL)
    alerts = AlertmanagerAlertSerializer(many=True, allow_empty=False, max_length=MAX_ALERTS)

    def validate_version(self, value: str) -> str:
        if value != "4":
            raise serializers.ValidationError(
                f'Only payload version "4" is understood, not {value[:20]!r}.'
            )
        return value

    @classmethod
    def parse(cls, data: Any) -> dict[str, Any]:
        serializer = cls(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class IngestResultSerializer(serializers.Serializer):
    fired = serializers.IntegerField(help_text="New alerts opened.")
    refreshed = serializers.IntegerField(help_text="Alerts already open, seen again.")
    reopened = serializers.IntegerField(help_text="Resolved alerts that fired again in time.")
    resolved = serializers.IntegerField(help_text="Open alerts resolved.")
    ignored = serializers.IntegerField(
        help_text="Redeliveries of what is already known, and resolves of nothing open."
    )
    triage = serializers.IntegerField(
        help_text="Firing alerts whose labels name no deployment of the team (triage list)."
    )
    truncated = serializers.IntegerField(
        help_text="Alerts Alertmanager left out of this post (max_alerts); they come later."
    )


_EXAMPLE = {
    "version": "4",
    "groupKey": '{}:{alertname="ModelErrorBudgetBurn"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "modelplane",
    "groupLabels": {"alertname": "ModelErrorBudgetBurn"},
    "commonLabels": {"alertname": "ModelErrorBudgetBurn", "modelplane_team": "fraud"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "ModelErrorBudgetBurn",
                "modelplane_team": "fraud",
                "modelplane_deployment": "7",
                "model": "fraud-scorer",
                "environment": "production",
                "severity": "page",
            },
            "annotations": {"summary": "fraud-scorer burns its error budget 14x too fast"},
            "startsAt": "2025-01-01T10:00:00.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=...",
            "fingerprint": "5c4e3f1a2b6d7e8f",
        }
    ],
}


@extend_schema(
    tags=["alerts"],
    operation_id="alertmanager_webhook",
    summary="Alertmanager webhook receiver (payload version 4)",
    description=(
        "Point an Alertmanager `webhook_config` here with a team's write token "
        "(`http_config.authorization.credentials_file`). Each alert is read by its own status, "
        "deduplicated by fingerprint and placed on a deployment of the token's team by its "
        "labels (docs/alertmanager.md); alerts whose labels name nothing land on the team's "
        "triage list. Redeliveries change nothing. A malformed body is refused whole (400 "
        "naming the field), with nothing written."
    ),
    request=AlertmanagerPayloadSerializer,
    responses={200: IngestResultSerializer},
    auth=[{"bearerAuth": []}],
    examples=[OpenApiExample("A burn-rate page", value=_EXAMPLE, request_only=True)],
)
@api_view(["POST"])
def webhook(request: Request) -> Response:
    team = alertmanager.poster_team(request.user)  # before the body: 403 says nothing of it
    payload = AlertmanagerPayloadSerializer.parse(request.data)
    result = alertmanager.ingest(payload, actor=actor_of(request), team=team)
    return Response(IngestResultSerializer(result).data)
