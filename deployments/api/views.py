"""Thin DRF views for environments, deployments, releases and rollbacks: parse, call a service
or a selector, serialize. Every rule (who may, which state allows what) lives in
deployments/services.py and controlplane/permissions.py, never here."""

from __future__ import annotations

from collections.abc import Callable

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_PARAM, ReadsWithoutTransaction
from deployments import selectors, services
from deployments.filtersets import DeploymentFilterSet, ReleaseFilterSet
from deployments.models import Deployment, Release
from identity.audit import actor_of
from identity.idempotency import idempotent
from registry import selectors as registry_selectors

from . import serializers as s


@extend_schema(tags=["environments"])
class EnvironmentViewSet(viewsets.GenericViewSet):
    serializer_class = s.EnvironmentSerializer
    lookup_field = "name"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.environment_list()

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.EnvironmentSerializer(page, many=True).data)

    def retrieve(self, request: Request, name: str) -> Response:
        return Response(s.EnvironmentSerializer(selectors.environment_get(name)).data)

    @extend_schema(
        request=s.EnvironmentCreateSerializer,
        responses={201: s.EnvironmentSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        def handler() -> Response:
            data = s.EnvironmentCreateSerializer.parse(request.data)
            environment = services.environment_create(actor=actor_of(request), **data)
            body = s.EnvironmentSerializer(selectors.environment_get(environment.name)).data
            return Response(body, status=status.HTTP_201_CREATED)

        return idempotent(request, handler)


@extend_schema(tags=["deployments"])
class DeploymentViewSet(ReadsWithoutTransaction, viewsets.GenericViewSet):
    serializer_class = s.DeploymentSerializer
    filterset_class = DeploymentFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["environment__name", "name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.deployment_list(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.DeploymentSerializer(page, many=True).data)

    def _body(self, request: Request, deployment: Deployment) -> dict:
        return s.DeploymentSerializer(selectors.deployment_get(request.user, deployment.pk)).data

    @extend_schema(
        request=s.DeploymentCreateSerializer,
        responses={201: s.DeploymentSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        def handler() -> Response:
            data = s.DeploymentCreateSerializer.parse(request.data)
            model = registry_selectors.model_get(request.user, data.pop("model"))
            environment = selectors.environment_get(data.pop("environment"))
            deployment = services.deployment_create(
                actor=actor_of(request), model=model, environment=environment, **data
            )
            return Response(self._body(request, deployment), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.DeploymentSerializer(selectors.deployment_get(request.user, pk)).data)

    @extend_schema(request=s.DeploymentUpdateSerializer, responses=s.DeploymentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        """Change the strategy and/or the config: a config change adds a new revision."""
        deployment = selectors.deployment_get(request.user, pk)
        data = s.DeploymentUpdateSerializer.parse(request.data)
        services.deployment_configure(actor=actor_of(request), deployment=deployment, **data)
        return Response(self._body(request, deployment))

    @extend_schema(responses=s.DeploymentConfigSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="configs")
    def configs(self, request: Request, pk: str) -> Response:
        """The config revision history, newest first."""
        deployment = selectors.deployment_get(request.user, pk)
        configs = selectors.deployment_configs(deployment)
        return Response(s.DeploymentConfigSerializer(configs, many=True).data)

    @extend_schema(
        request=s.RollbackRequestSerializer,
        responses={202: s.RollbackSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    @action(detail=True, methods=["post"], url_path="rollback")
    def rollback(self, request: Request, pk: str) -> Response:
        """All traffic back to the last promoted version; the work runs after this answers."""

        def handler() -> Response:
            deployment = selectors.deployment_get(request.user, pk)
            data = s.RollbackRequestSerializer.parse(request.data)
            rollback = services.deployment_rollback(
                actor=actor_of(request), deployment=deployment, **data
            )
            body = s.RollbackSerializer(rollback).data
            return Response(body, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, handler)


RELEASE_ACTION_DOC = {
    "approve": "Approve (approvers only; never the author, never a CI token).",
    "reject": "Reject (approvers only; never the author, never a CI token).",
    "promote": "Skip the current analysis wait and go on to the next step.",
    "pause": "Pause the release where it is.",
    "resume": "Resume a paused release; its analysis window starts again.",
    "abort": "Stop for good; in production, traffic goes back to the stable version first.",
}


@extend_schema(tags=["releases"])
class ReleaseViewSet(ReadsWithoutTransaction, viewsets.GenericViewSet):
    serializer_class = s.ReleaseSerializer
    filterset_class = ReleaseFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["created_at", "updated_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.release_list(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ReleaseSerializer(page, many=True).data)

    def _detail(self, request: Request, release: Release | int | str) -> dict:
        pk = release.pk if isinstance(release, Release) else release
        return s.ReleaseDetailSerializer(selectors.release_detail(request.user, pk)).data

    @extend_schema(
        request=s.ReleaseCreateSerializer,
        responses={201: s.ReleaseDetailSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        """Ask for a release of a version on a deployment. A deployment holds at most one
        active release: a second request gets 409 until the first one ends."""

        def handler() -> Response:
            data = s.ReleaseCreateSerializer.parse(request.data)
            deployment = selectors.deployment_get(
                request.user, data["deployment"], field="deployment"
            )
            version = selectors.deployment_version(deployment, data["version"])
            release = services.release_create(
                actor=actor_of(request), deployment=deployment, version=version
            )
            return Response(self._detail(request, release), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(responses=s.ReleaseDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._detail(request, pk))

    def _decide(self, request: Request, pk: str, decision: str) -> Response:
        release = selectors.release_detail(request.user, pk)
        data = s.ReleaseDecisionSerializer.parse(request.data)
        services.release_decide(actor=actor_of(request), release=release, decision=decision, **data)
        return Response(self._detail(request, pk))

    @extend_schema(
        request=s.ReleaseDecisionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["approve"],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, "approve")

    @extend_schema(
        request=s.ReleaseDecisionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["reject"],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._decide(request, pk, "reject")

    def _operate(self, request: Request, pk: str, service: Callable[..., Release]) -> Response:
        release = selectors.release_detail(request.user, pk)
        data = s.ReleaseActionSerializer.parse(request.data)
        service(actor=actor_of(request), release=release, **data)
        return Response(self._detail(request, pk))

    @extend_schema(
        request=s.ReleaseActionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["promote"],
    )
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.release_promote)

    @extend_schema(
        request=s.ReleaseActionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["pause"],
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.release_pause)

    @extend_schema(
        request=s.ReleaseActionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["resume"],
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.release_resume)

    @extend_schema(
        request=s.ReleaseActionSerializer,
        responses=s.ReleaseDetailSerializer,
        description=RELEASE_ACTION_DOC["abort"],
    )
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        return self._operate(request, pk, services.release_abort)
