"""Thin DRF views of a team's notification channels (outgoing webhooks). A channel names the
environment variable that holds its URL, never the URL: the URL is a credential. Whether the
variable is set on this server is shown, so a missing secret is seen before an alert needs it."""

from __future__ import annotations

import os
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_PARAM, StrictCharField, StrictSerializer, StrictSlugField
from identity import selectors as identity_selectors
from identity.audit import actor_of
from identity.idempotency import idempotent

from .. import selectors, services
from ..models import NotificationChannel


class ChannelSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.slug", read_only=True)
    url_env = serializers.CharField(
        read_only=True, help_text="The environment variable that holds the webhook URL"
    )
    url_configured = serializers.SerializerMethodField(
        help_text="Whether that variable is set on this server (its value is never shown)"
    )

    class Meta:
        model = NotificationChannel
        fields = ["id", "team", "name", "url_env", "url_configured", "is_active", "created_at"]

    def get_url_configured(self, channel: NotificationChannel) -> bool:
        return bool(os.environ.get(channel.url_env))


class ChannelCreateSerializer(StrictSerializer):
    team = StrictSlugField(max_length=63)
    name = StrictCharField(max_length=100)
    url_env = StrictCharField(
        max_length=100, help_text="Name of the environment variable holding the URL, never a URL"
    )
    is_active = serializers.BooleanField(required=False, default=True)


class ChannelUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=100, required=False)
    url_env = StrictCharField(max_length=100, required=False)
    is_active = serializers.BooleanField(required=False)


@extend_schema(tags=["alerts"])
class NotificationChannelViewSet(viewsets.GenericViewSet):
    serializer_class = ChannelSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    ordering = ["team__slug", "name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.channel_list(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(ChannelSerializer(page, many=True).data)

    def _detail(self, request: Request, pk: int | str) -> dict[str, Any]:
        return ChannelSerializer(selectors.channel_get(request.user, pk)).data

    @extend_schema(
        request=ChannelCreateSerializer,
        responses={201: ChannelSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        """A webhook that hears of every change of the team's alerts (Slack-compatible JSON)."""

        def handler() -> Response:
            data = ChannelCreateSerializer.parse(request.data)
            team = identity_selectors.team_get(request.user, data.pop("team"))
            channel = services.channel_create(actor=actor_of(request), team=team, **data)
            return Response(self._detail(request, channel.pk), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._detail(request, pk))

    @extend_schema(request=ChannelUpdateSerializer, responses=ChannelSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        channel = selectors.channel_get(request.user, pk)
        data = ChannelUpdateSerializer.parse(request.data)
        services.channel_update(actor=actor_of(request), channel=channel, **data)
        return Response(self._detail(request, pk))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        channel = selectors.channel_get(request.user, pk)
        services.channel_delete(actor=actor_of(request), channel=channel)
        return Response(status=status.HTTP_204_NO_CONTENT)
