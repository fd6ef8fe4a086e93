"""Thin DRF views of deployment health for CI pipelines, bots and dashboards: parse the window,
call monitoring.selectors, serialize. The same numbers as the monitoring pages; who may see
which deployment is decided by the selectors (deployments.selectors), never here."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ProblemSerializer
from monitoring import selectors

from . import serializers as s

WINDOW_PARAM = OpenApiParameter(
    "window",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    required=False,
    enum=list(selectors.WINDOWS),
    default=selectors.DEFAULT_WINDOW,
    description="The window the numbers cover; any other value is a 422 naming `window`.",
)
UNKNOWN_WINDOW = OpenApiResponse(
    ProblemSerializer, description="Validation failed: an unknown `window`"
)
PROBLEM = "application/problem+json"


def _window(request: Request) -> tuple[str, int]:
    return selectors.window_of(request.query_params.get("window"))


class MonitoringOverviewView(APIView):
    @extend_schema(
        tags=["monitoring"],
        operation_id="monitoring_overview",
        parameters=[WINDOW_PARAM],
        responses={200: s.MonitoringOverviewSerializer, (422, PROBLEM): UNKNOWN_WINDOW},
    )
    def get(self, request: Request) -> Response:
        """Every deployment you may see, worst first, with its health and the overview's
        tiles per track (as /monitoring/ shows them)."""
        label, seconds = _window(request)
        healths = selectors.monitoring_overview(request.user, seconds)
        overview = {
            "window": label,
            "counts": selectors.health_counts(healths),
            "deployments": healths,
        }
        return Response(s.MonitoringOverviewSerializer(overview).data)


class DeploymentMonitoringView(APIView):
    @extend_schema(
        tags=["monitoring"],
        operation_id="deployment_health",
        parameters=[WINDOW_PARAM],
        responses={200: s.DeploymentMonitoringSerializer, (422, PROBLEM): UNKNOWN_WINDOW},
    )
    def get(self, request: Request, pk: int) -> Response:
        """One deployment's health: its deployment-wide tiles and every tile of every track
        (as /deployments/{id}/monitoring/ shows them)."""
        label, seconds = _window(request)
        health = selectors.deployment_monitoring(request.user, pk, seconds)
        body = s.DeploymentMonitoringSerializer(health, context={"window": label}).data
        return Response(body)
