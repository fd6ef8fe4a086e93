"""Thin DRF views for the registry: parse, call a service or selector, serialize."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_PARAM, ReadsWithoutTransaction
from core.pagination import KeysetPagination
from identity import selectors as identity_selectors
from identity.audit import actor_of
from identity.idempotency import idempotent
from registry import selectors, services
from registry.filtersets import ModelFilterSet, VersionFilterSet
from registry.models import Alias, ModelVersion

from . import serializers as s


@extend_schema(tags=["models"])
class ModelViewSet(ReadsWithoutTransaction, viewsets.GenericViewSet):
    serializer_class = s.ModelSerializer
    lookup_field = "name"
    filterset_class = ModelFilterSet
    ordering_fields = ["name", "created_at", "updated_at", "risk_tier"]
    ordering = ["name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.model_list(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ModelSerializer(page, many=True).data)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(s.ModelSerializer(selectors.model_get(request.user, name)).data)

    @extend_schema(
        request=s.ModelCreateSerializer,
        responses={201: s.ModelSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        def handler() -> Response:
            data = s.ModelCreateSerializer.parse(request.data)
            team = identity_selectors.team_get(request.user, data.pop("team"))
            model = services.model_create(actor=actor_of(request), team=team, **data)
            return Response(s.ModelSerializer(model).data, status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(request=s.ModelUpdateSerializer, responses=s.ModelSerializer)
    def partial_update(self, request: Request, name: str) -> Response:
        model = selectors.model_get(request.user, name)
        data = s.ModelUpdateSerializer.parse(request.data)
        model = services.model_update(actor=actor_of(request), model=model, **data)
        return Response(s.ModelSerializer(model).data)


class VersionPagination(KeysetPagination):
    """Versions newest first, by cursor on (model, number); `ordering=number` (or `created_at`,
    the same order) walks them oldest first."""

    key = "number"
    key_aliases = frozenset({"created_at"})
    ordering = "-number"


@extend_schema(tags=["versions"])
class VersionViewSet(ReadsWithoutTransaction, viewsets.GenericViewSet):
    serializer_class = s.VersionSerializer
    lookup_field = "number"
    lookup_value_regex = r"\d+"
    filterset_class = VersionFilterSet
    ordering_fields = ["number", "created_at"]
    ordering = ["-number"]
    pagination_class = VersionPagination

    def model(self):  # type: ignore[no-untyped-def]
        return selectors.model_get(self.request.user, self.kwargs["model_name"])

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation has no URL kwargs
            return ModelVersion.objects.none()
        self._model = self.model()
        return selectors.version_page_queryset(self._model)

    def list(self, request: Request, model_name: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        page = selectors.with_alias_names(self._model, page)
        return self.get_paginated_response(s.VersionSerializer(page, many=True).data)

    def retrieve(self, request: Request, model_name: str, number: str) -> Response:
        version = selectors.version_detail(request.user, model_name, number)
        return Response(s.VersionSerializer(version).data)

    @extend_schema(
        request=s.VersionCreateSerializer,
        responses={201: s.VersionSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request, model_name: str) -> Response:
        def handler() -> Response:
            model = self.model()
            data = s.VersionCreateSerializer.parse(request.data)
            version = services.version_register(actor=actor_of(request), model=model, **data)
            version.alias_names = []  # a new version has no alias yet
            return Response(s.VersionSerializer(version).data, status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(request=s.VersionUpdateSerializer, responses=s.VersionSerializer)
    def partial_update(self, request: Request, model_name: str, number: str) -> Response:
        model = self.model()
        version = selectors.version_get(model, number)
        data = s.VersionUpdateSerializer.parse(request.data)
        services.version_update(actor=actor_of(request), version=version, **data)
        return Response(s.VersionSerializer(selectors.version_get(model, number)).data)


@extend_schema(tags=["aliases"])
class AliasViewSet(ReadsWithoutTransaction, viewsets.GenericViewSet):
    serializer_class = s.AliasSerializer
    lookup_field = "alias"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    pagination_class = None

    def model(self):  # type: ignore[no-untyped-def]
        return selectors.model_get(self.request.user, self.kwargs["model_name"])

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Alias.objects.none()
        return selectors.alias_list(self.model())

    def list(self, request: Request, model_name: str) -> Response:
        return Response(s.AliasSerializer(self.get_queryset(), many=True).data)

    def retrieve(self, request: Request, model_name: str, alias: str) -> Response:
        return Response(s.AliasSerializer(selectors.alias_get(self.model(), alias)).data)

    @extend_schema(request=s.AliasWriteSerializer, responses=s.AliasSerializer)
    def update(self, request: Request, model_name: str, alias: str) -> Response:
        model = self.model()
        data = s.AliasWriteSerializer.parse(request.data)
        services.alias_set(
            actor=actor_of(request), model=model, name=alias, version_number=data["version"]
        )
        return Response(s.AliasSerializer(selectors.alias_get(model, alias)).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, model_name: str, alias: str) -> Response:
        services.alias_delete(actor=actor_of(request), model=self.model(), name=alias)
        return Response(status=status.HTTP_204_NO_CONTENT)
