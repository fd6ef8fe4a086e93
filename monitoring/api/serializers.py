"""Translation of the monitoring selectors' health (DeploymentHealth, TrackHealth, Tile) into
JSON. Shapes and types only: the selectors compute every number and judge every health; a
serializer never fills in a missing value (an unknown number stays null, its tile `no_data`)."""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.runtime.base import Track
from monitoring.health import Health
from monitoring.selectors import WINDOWS
from monitoring.tiles import TileStatus


class FiniteFloatField(serializers.FloatField):
    """A number JSON can carry: NaN and infinity are unknown values, so null (strict JSON has
    no NaN), as core.jsonsafe does for stored evidence."""

    def to_representation(self, value: Any) -> float | None:
        number = float(value)
        return number if math.isfinite(number) else None


class TileSerializer(serializers.Serializer):
    key = serializers.CharField(help_text='Stable id of the tile, e.g. "error_rate".')
    label = serializers.CharField()
    text = serializers.CharField(help_text='The value as a page words it; "no data" when unknown.')
    status = serializers.ChoiceField(
        choices=[status.value for status in TileStatus],
        help_text="ok, warn or fail against the deployment's thresholds; no_data when unknown; "
        "info for numbers that are not judged.",
    )
    value = FiniteFloatField(
        allow_null=True, help_text="The number; null when unknown (status no_data), never 0."
    )
    detail = serializers.CharField(allow_blank=True, help_text="How the number was found.")
    spark = serializers.ListField(
        child=FiniteFloatField(allow_null=True),
        help_text="Sparkline points over the window, oldest first; null where a step is unknown.",
    )


HEALTH_CHOICES = [health.value for health in Health]
TRACK_CHOICES = [track.value for track in Track]


class TrackSummarySerializer(serializers.Serializer):
    """One version serving one track, with the few tiles the overview shows."""

    track = serializers.ChoiceField(choices=TRACK_CHOICES)
    version = serializers.IntegerField(source="version_number")
    health = serializers.ChoiceField(choices=HEALTH_CHOICES)
    reasons = serializers.ListField(child=serializers.CharField())
    tiles = TileSerializer(source="summary_tiles", many=True)


class TrackDetailSerializer(TrackSummarySerializer):
    """One version serving one track, with every tile."""

    tiles = TileSerializer(many=True)


class DeploymentHealthSerializer(serializers.Serializer):
    """A deployment's health over the window, as the overview shows it."""

    id = serializers.IntegerField(source="deployment.pk")
    name = serializers.CharField(source="deployment.name")
    environment = serializers.CharField(source="deployment.environment.name")
    model = serializers.CharField(source="deployment.model.name")
    health = serializers.ChoiceField(choices=HEALTH_CHOICES)
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="The failing, then warning tiles, worded."
    )
    notes = serializers.ListField(
        child=serializers.CharField(), help_text="Why a number is missing (no source, ...)."
    )
    window_label = serializers.CharField(
        help_text='The window the numbers cover, e.g. "1h" ("1d" for 24h).'
    )
    slo_window_label = serializers.CharField(help_text="The error budget's window.")
    tracks = TrackSummarySerializer(many=True)


# How many deployments are in each health state, one field per `Health` (as
# `selectors.health_counts` answers), so a new state cannot be left out here.
HealthCountsSerializer = serializers.SerializerMetaclass(
    "HealthCountsSerializer",
    (serializers.Serializer,),
    {
        "__module__": __name__,
        **{
            health.value: serializers.IntegerField(
                help_text=f"Deployments whose health is {health.value}."
            )
            for health in Health
        },
    },
)


class MonitoringOverviewSerializer(serializers.Serializer):
    """Every deployment the caller may see, worst first."""

    # Serializes {"window": label, "counts": health_counts(...), "deployments": [health, ...]}.
    window = serializers.ChoiceField(choices=list(WINDOWS))
    counts = HealthCountsSerializer(help_text="How many deployments are in each health state.")
    deployments = DeploymentHealthSerializer(many=True)


class DeploymentMonitoringSerializer(DeploymentHealthSerializer):
    """One deployment: its deployment-wide tiles and every tile of every track."""

    # The chosen window is not part of DeploymentHealth: it comes in the context.
    window = serializers.SerializerMethodField()
    tiles = TileSerializer(
        many=True, help_text="Deployment-wide: cost per hour, monthly budget, last rollback."
    )
    tracks = TrackDetailSerializer(many=True)

    @extend_schema_field(serializers.ChoiceField(choices=list(WINDOWS)))
    def get_window(self, health: Any) -> str:
        return str(self.context["window"])
