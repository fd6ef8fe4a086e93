"""The Prometheus rule file of the control plane's SLO rules (being written)."""

from __future__ import annotations

from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response


@api_view(["GET"])
def prometheus_rules(request: Request) -> Response:
    return Response(status=501)
