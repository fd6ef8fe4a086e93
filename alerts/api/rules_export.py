"""GET /api/v1/alerts/prometheus-rules: the Prometheus rules of the SLOs of every deployment the
caller may see, as a rule file or a prometheus-operator PrometheusRule object. Parses the query
and answers YAML; the rules themselves are alerts.prometheus_rules'."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from alerts.prometheus_rules import prometheus_rule_yaml, rule_file_yaml
from core.api import ProblemSerializer, StrictCharField, StrictSerializer
from deployments import selectors as deployment_selectors
from monitoring.api.exporter import ExpositionNegotiation

RULE_FILE = "rules"
PROMETHEUS_RULE = "prometheusrule"
CONTENT_TYPES = {
    RULE_FILE: "text/yaml; charset=utf-8",
    PROMETHEUS_RULE: "application/yaml; charset=utf-8",
}


class RulesQuerySerializer(StrictSerializer):
    format = serializers.ChoiceField(choices=sorted(CONTENT_TYPES), default=RULE_FILE)
    environment = StrictCharField(required=False, max_length=100)
    name = StrictCharField(required=False, default="modelplane-slo-rules", max_length=253)
    namespace = StrictCharField(required=False, default="monitoring", max_length=63)


class PrometheusRulesView(APIView):
    """The burn-rate, error-rate and latency rules of the SLOs of every deployment you may see,
    for a Prometheus (and its Alertmanager) to evaluate; read-scoped tokens may fetch them. See
    docs/alert-rules.md for the labels the Alertmanager webhook maps back to a deployment."""

    # DRF reads `?format=` as a renderer choice (404 for ours); here it names the document,
    # and DRF's renderer only writes the problem documents of refused requests.
    content_negotiation_class = ExpositionNegotiation

    @extend_schema(
        tags=["alerts"],
        operation_id="alerts_prometheus_rules",
        summary="Prometheus rules of the SLOs of the deployments you may see",
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=sorted(CONTENT_TYPES),
                default=RULE_FILE,
                description="`rules`: a Prometheus rule file (text/yaml); `prometheusrule`: a "
                "monitoring.coreos.com/v1 PrometheusRule object (application/yaml).",
            ),
            OpenApiParameter(
                "environment",
                OpenApiTypes.STR,
                description="Only this environment's deployments: load each environment's "
                "rules into the Prometheus that scrapes it.",
            ),
            OpenApiParameter(
                "name",
                OpenApiTypes.STR,
                description="The PrometheusRule's name (default modelplane-slo-rules)",
            ),
            OpenApiParameter(
                "namespace",
                OpenApiTypes.STR,
                description="The PrometheusRule's namespace (default monitoring)",
            ),
        ],
        responses={
            (200, "text/yaml"): OpenApiResponse(
                OpenApiTypes.STR, description="The rules, as a rule file or a PrometheusRule"
            ),
            (200, "application/yaml"): OpenApiResponse(OpenApiTypes.STR),
            (400, "application/problem+json"): OpenApiResponse(
                ProblemSerializer, description="An unknown format or parameter"
            ),
            (422, "application/problem+json"): OpenApiResponse(
                ProblemSerializer, description="A name or namespace Kubernetes would refuse"
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        query = RulesQuerySerializer.parse(request.query_params.dict())
        deployments = deployment_selectors.deployment_list(request.user)
        if "environment" in query:
            # An unknown name is a 404, never an empty file that would drop every rule.
            environment = deployment_selectors.environment_get(query["environment"])
            deployments = deployments.filter(environment=environment)
        if query["format"] == PROMETHEUS_RULE:
            body = prometheus_rule_yaml(
                deployments, name=query["name"], namespace=query["namespace"]
            )
        else:
            body = rule_file_yaml(deployments)
        response = HttpResponse(body, content_type=CONTENT_TYPES[query["format"]])
        response["Cache-Control"] = "no-store"
        return response


prometheus_rules = PrometheusRulesView.as_view()
