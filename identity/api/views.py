"""Thin DRF views for teams, members, tokens and the audit log: parse, call a service or
selector, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_PARAM
from core.errors import NotFound
from identity import selectors, services
from identity.audit import actor_of
from identity.filtersets import AuditEventFilterSet
from identity.idempotency import idempotent
from identity.permissions import Action, require

from . import serializers as s


@extend_schema(tags=["teams"])
class TeamViewSet(viewsets.GenericViewSet):
    serializer_class = s.TeamSerializer
    lookup_field = "slug"
    ordering_fields = ["slug", "name", "created_at"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.teams_visible(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.TeamSerializer(page, many=True).data)

    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(s.TeamSerializer(selectors.team_get(request.user, slug)).data)

    @extend_schema(
        request=s.TeamCreateSerializer,
        responses={201: s.TeamSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        def handler() -> Response:
            data = s.TeamCreateSerializer.parse(request.data)
            team = services.team_create(actor=actor_of(request), **data)
            return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(responses=s.MembershipSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="members")
    def members(self, request: Request, slug: str) -> Response:
        team = selectors.team_get(request.user, slug)
        return Response(s.MembershipSerializer(selectors.team_members(team), many=True).data)

    @extend_schema(request=s.MembershipWriteSerializer, responses=s.MembershipSerializer)
    @members.mapping.put
    def set_member(self, request: Request, slug: str) -> Response:
        team = selectors.team_get(request.user, slug)
        data = s.MembershipWriteSerializer.parse(request.data)
        membership = services.membership_set(actor=actor_of(request), team=team, **data)
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[\w.@+-]+)")
    def remove_member(self, request: Request, slug: str, username: str) -> Response:
        team = selectors.team_get(request.user, slug)
        services.membership_remove(actor=actor_of(request), team=team, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.TokenSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="tokens")
    def tokens(self, request: Request, slug: str) -> Response:
        team = selectors.team_get(request.user, slug)
        require(request.user, Action.TEAM_MANAGE_TOKENS, team)
        return Response(s.TokenSerializer(selectors.team_tokens(team), many=True).data)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    @tokens.mapping.post
    def create_token(self, request: Request, slug: str) -> Response:
        team = selectors.team_get(request.user, slug)
        data = s.TokenCreateSerializer.parse(request.data)
        issued = services.token_create(actor=actor_of(request), team=team, **data)
        body = s.TokenSerializer(issued.token).data | {"secret": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.TokenSerializer)
    @action(detail=True, methods=["post"], url_path=r"tokens/(?P<token_id>\d+)/revoke")
    def revoke_token(self, request: Request, slug: str, token_id: str) -> Response:
        team = selectors.team_get(request.user, slug)
        require(request.user, Action.TEAM_MANAGE_TOKENS, team)
        token = selectors.team_tokens(team).filter(pk=token_id).first()
        if token is None:
            raise NotFound(f"team {slug} has no token {token_id}", field="token_id")
        token = services.token_revoke(actor=actor_of(request), token=token)
        return Response(s.TokenSerializer(token).data)


@extend_schema(tags=["audit"])
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.AuditEventSerializer
    filterset_class = AuditEventFilterSet
    ordering_fields = ["occurred_at", "id"]
    ordering = ["-occurred_at", "-id"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.audit_events(self.request.user)
