"""Alertmanager's webhook receiver (being written)."""

from __future__ import annotations

from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response


@api_view(["POST"])
def webhook(request: Request) -> Response:
    return Response(status=501)
