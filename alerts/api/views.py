"""Thin DRF views of alerts, schedules, escalation policies and incidents: parse, call
alerts.lifecycle / alerts.services / alerts.incidents or a selector, serialize. Who may do what
lives in identity/permissions.py; what the caller may not see answers 404 (the selectors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core import clock
from core.api import IDEMPOTENCY_PARAM, StrictSerializer
from deployments import selectors as deployment_selectors
from identity import selectors as identity_selectors
from identity.audit import actor_of
from identity.idempotency import idempotent

from .. import incidents, lifecycle, oncall, selectors, services
from ..filtersets import (
    AlertFilterSet,
    EscalationPolicyFilterSet,
    IncidentFilterSet,
    ScheduleFilterSet,
)
from ..models import Alert, Incident, Schedule
from . import serializers as s

# Alerts ---------------------------------------------------------------------------------------


@extend_schema(tags=["alerts"])
class AlertViewSet(viewsets.GenericViewSet):
    serializer_class = s.AlertSerializer
    filterset_class = AlertFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["starts_at", "last_seen_at", "severity", "status", "id"]
    ordering = ["-starts_at", "-id"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.alert_list(self.request.user).select_related("acknowledged_by")

    def list(self, request: Request) -> Response:
        """Alerts of the caller's teams; `assignee=me` for mine, `triage=true` for the alerts
        whose labels named no deployment."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.AlertSerializer(page, many=True).data)

    def _detail(self, request: Request, pk: int | str) -> dict[str, Any]:
        alert = selectors.alert_get(request.user, pk)
        context = {
            "events": selectors.alert_events(alert),
            "deliveries": selectors.alert_deliveries(alert),
        }
        return s.AlertDetailSerializer(alert, context=context).data

    @extend_schema(responses=s.AlertDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The alert with its timeline (who did what) and its notifications."""
        return Response(self._detail(request, pk))

    def _respond(
        self,
        request: Request,
        pk: str,
        parser: type[StrictSerializer],
        change: Callable[..., Any],
        code: int = status.HTTP_200_OK,
    ) -> Response:
        alert = selectors.alert_get(request.user, pk)
        data = parser.parse(request.data)
        change(actor=actor_of(request), alert=alert, **data)
        return Response(self._detail(request, pk), status=code)

    @extend_schema(request=s.AlertAcknowledgeSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """I have it: escalation stops. The assignee, the team's on-call or an owner."""
        return self._respond(request, pk, s.AlertAcknowledgeSerializer, lifecycle.acknowledge)

    @extend_schema(request=s.AlertResolveSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        """Resolve by hand. The assignee, the team's on-call or an owner."""
        return self._respond(request, pk, s.AlertResolveSerializer, lifecycle.resolve)

    @extend_schema(request=s.AlertSilenceSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def silence(self, request: Request, pk: str) -> Response:
        """No escalation and no notification until `until` (at most 7 days)."""
        return self._respond(request, pk, s.AlertSilenceSerializer, lifecycle.silence)

    @extend_schema(request=s.AlertReassignSerializer, responses=s.AlertDetailSerializer)
    @action(detail=True, methods=["post"])
    def reassign(self, request: Request, pk: str) -> Response:
        """Hand the alert to another member of its team, with a reason."""

        def change(*, actor: Any, alert: Alert, assignee: str, reason: str) -> Alert:
            return lifecycle.reassign(actor=actor, alert=alert, username=assignee, reason=reason)

        return self._respond(request, pk, s.AlertReassignSerializer, change)

    @extend_schema(
        request=s.AlertNoteSerializer,
        responses={201: s.AlertDetailSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    @action(detail=True, methods=["post"])
    def notes(self, request: Request, pk: str) -> Response:
        """Leave a note on the alert's timeline."""
        return idempotent(
            request,
            lambda: self._respond(
                request, pk, s.AlertNoteSerializer, lifecycle.add_note, status.HTTP_201_CREATED
            ),
        )


# Schedules ------------------------------------------------------------------------------------

AT_PARAM = OpenApiParameter(
    "at",
    OpenApiTypes.DATETIME,
    OpenApiParameter.QUERY,
    required=False,
    description="The instant to ask about, with its offset (default: now)",
)


@extend_schema(tags=["on-call"])
class ScheduleViewSet(viewsets.GenericViewSet):
    serializer_class = s.ScheduleSerializer
    filterset_class = ScheduleFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    ordering = ["team__slug", "name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        schedules = selectors.schedule_list(self.request.user)
        return oncall.with_rotations(schedules, since=clock.now())

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.ScheduleSerializer(page, many=True).data)

    def _detail(self, schedule: Schedule) -> dict[str, Any]:
        loaded = oncall.with_rotations(selectors.schedule_list(None), since=clock.now())
        return s.ScheduleSerializer(loaded.get(pk=schedule.pk)).data

    @extend_schema(
        request=s.ScheduleCreateSerializer,
        responses={201: s.ScheduleSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        """A schedule for a team, optionally with its rotation layers."""

        def handler() -> Response:
            data = s.ScheduleCreateSerializer.parse(request.data)
            team = identity_selectors.team_get(request.user, data.pop("team"))
            schedule = services.schedule_create(actor=actor_of(request), team=team, **data)
            return Response(self._detail(schedule), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._detail(selectors.schedule_get(request.user, pk)))

    @extend_schema(request=s.ScheduleUpdateSerializer, responses=s.ScheduleSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        schedule = selectors.schedule_get(request.user, pk)
        data = s.ScheduleUpdateSerializer.parse(request.data)
        services.schedule_update(actor=actor_of(request), schedule=schedule, **data)
        return Response(self._detail(schedule))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        """Refused (409) while an escalation policy routes to the schedule."""
        schedule = selectors.schedule_get(request.user, pk)
        services.schedule_delete(actor=actor_of(request), schedule=schedule)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.LayersWriteSerializer, responses=s.ScheduleSerializer)
    @action(detail=True, methods=["put"])
    def layers(self, request: Request, pk: str) -> Response:
        """Replace all rotation layers of the schedule in one call."""
        schedule = selectors.schedule_get(request.user, pk)
        data = s.LayersWriteSerializer.parse(request.data)
        services.schedule_set_layers(actor=actor_of(request), schedule=schedule, **data)
        return Response(self._detail(schedule))

    @extend_schema(
        request=s.OverrideCreateSerializer,
        responses={201: s.OverrideSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    @action(detail=True, methods=["post"])
    def overrides(self, request: Request, pk: str) -> Response:
        """Someone takes the whole schedule for a while (a swap, holiday cover)."""

        def handler() -> Response:
            schedule = selectors.schedule_get(request.user, pk)
            data = s.OverrideCreateSerializer.parse(request.data)
            override = services.override_create(
                actor=actor_of(request),
                schedule=schedule,
                username=data.pop("user"),
                **data,
            )
            return Response(s.OverrideSerializer(override).data, status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(
        responses={204: None},
        parameters=[OpenApiParameter("override_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["delete"], url_path=r"overrides/(?P<override_id>\d+)")
    def delete_override(self, request: Request, pk: str, override_id: str) -> Response:
        schedule = selectors.schedule_get(request.user, pk)
        services.override_delete(
            actor=actor_of(request), schedule=schedule, override_id=override_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.OnCallSerializer, parameters=[AT_PARAM])
    @action(detail=True, methods=["get"], url_path="on-call")
    def on_call(self, request: Request, pk: str) -> Response:
        """Who is on call at `at` (default now) and who comes next; a gap is shown as a gap."""
        schedule = selectors.schedule_get(request.user, pk)
        at = s.OnCallQuerySerializer.parse(request.query_params.dict()).get("at") or clock.now()
        schedule = oncall.with_rotations(selectors.schedule_list(None)).get(pk=schedule.pk)
        current, following = oncall.now_and_next(schedule, at)
        body = {
            "schedule": schedule.pk,
            "at": at,
            "now": s.shift_data(current),
            "next": s.shift_data(following),
        }
        return Response(s.OnCallSerializer(body).data)


# Escalation policies --------------------------------------------------------------------------


@extend_schema(tags=["on-call"])
class EscalationPolicyViewSet(viewsets.GenericViewSet):
    serializer_class = s.EscalationPolicySerializer
    filterset_class = EscalationPolicyFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    ordering = ["team__slug", "name"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.policies_with_steps(self.request.user)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.EscalationPolicySerializer(page, many=True).data)

    def _detail(self, request: Request, pk: int | str) -> dict[str, Any]:
        policy = selectors.policy_get(request.user, pk)
        return s.EscalationPolicySerializer(self.get_queryset().get(pk=policy.pk)).data

    @extend_schema(
        request=s.EscalationPolicyCreateSerializer,
        responses={201: s.EscalationPolicySerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        """Steps are tried in order, each waiting for an acknowledgement; `repeat` more rounds
        after the last. Making a policy the default unsets the team's previous default."""

        def handler() -> Response:
            data = s.EscalationPolicyCreateSerializer.parse(request.data)
            team = identity_selectors.team_get(request.user, data.pop("team"))
            policy = services.policy_create(actor=actor_of(request), team=team, **data)
            return Response(self._detail(request, policy.pk), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self._detail(request, pk))

    @extend_schema(
        request=s.EscalationPolicyUpdateSerializer, responses=s.EscalationPolicySerializer
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        policy = selectors.policy_get(request.user, pk)
        data = s.EscalationPolicyUpdateSerializer.parse(request.data)
        services.policy_update(actor=actor_of(request), policy=policy, **data)
        return Response(self._detail(request, pk))

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        policy = selectors.policy_get(request.user, pk)
        services.policy_delete(actor=actor_of(request), policy=policy)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Incidents ------------------------------------------------------------------------------------


def _incident_alerts() -> Prefetch:
    alerts = Alert.objects.only("id", "incident_id", "title", "severity", "status", "starts_at")
    return Prefetch("alerts", queryset=alerts)


@extend_schema(tags=["incidents"])
class IncidentViewSet(viewsets.GenericViewSet):
    serializer_class = s.IncidentSerializer
    filterset_class = IncidentFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ["opened_at", "severity", "status", "id"]
    ordering = ["-opened_at", "-id"]

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return selectors.incident_list(self.request.user).prefetch_related(_incident_alerts())

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(s.IncidentSerializer(page, many=True).data)

    def _detail(self, request: Request, incident: Incident | int | str) -> dict[str, Any]:
        pk = incident.pk if isinstance(incident, Incident) else incident
        found = selectors.incident_get(request.user, pk)
        prefetch_related_objects([found], _incident_alerts())
        return s.IncidentDetailSerializer(found).data

    @extend_schema(
        request=s.IncidentCreateSerializer,
        responses={201: s.IncidentDetailSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    def create(self, request: Request) -> Response:
        """From an alert (`{"alert": id}`: team, deployment, severity, title and owner come from
        it) or by hand (`team`, `title`, `severity`, optionally `deployment`)."""

        def handler() -> Response:
            data = s.IncidentCreateSerializer.parse(request.data)
            user = request.user
            alert = team = deployment = None
            if "alert" in data:
                alert = selectors.alert_get(user, data["alert"], field="alert")
            if "team" in data:
                team = identity_selectors.team_get(user, data["team"])
            if "deployment" in data:
                deployment = deployment_selectors.deployment_get(
                    user, data["deployment"], field="deployment"
                )
            incident = incidents.open_incident(
                actor=actor_of(request),
                team=team,
                alert=alert,
                deployment=deployment,
                title=data["title"],
                severity=data["severity"],
            )
            return Response(self._detail(request, incident), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(responses=s.IncidentDetailSerializer)
    def retrieve(self, request: Request, pk: str) -> Response:
        """The incident with its timeline (its own events, the alerts of its deployment, the
        releases and rollbacks in its window) and the deployment's rollback notes."""
        return Response(self._detail(request, pk))

    @extend_schema(
        request=s.IncidentNoteSerializer,
        responses={201: s.IncidentDetailSerializer},
        parameters=[IDEMPOTENCY_PARAM],
    )
    @action(detail=True, methods=["post"])
    def notes(self, request: Request, pk: str) -> Response:
        def handler() -> Response:
            incident = selectors.incident_get(request.user, pk)
            data = s.IncidentNoteSerializer.parse(request.data)
            incidents.add_note(actor=actor_of(request), incident=incident, **data)
            return Response(self._detail(request, pk), status=status.HTTP_201_CREATED)

        return idempotent(request, handler)

    @extend_schema(request=s.IncidentStatusSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"], url_path="status")
    def change_status(self, request: Request, pk: str) -> Response:
        """open -> mitigated -> closed; closing needs a summary; a closed incident stays so."""
        incident = selectors.incident_get(request.user, pk)
        data = s.IncidentStatusSerializer.parse(request.data)
        incidents.set_status(actor=actor_of(request), incident=incident, **data)
        return Response(self._detail(request, pk))

    @extend_schema(request=s.IncidentOwnerSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def owner(self, request: Request, pk: str) -> Response:
        """Hand the incident to another member of the team, with a reason."""
        incident = selectors.incident_get(request.user, pk)
        data = s.IncidentOwnerSerializer.parse(request.data)
        incidents.set_owner(
            actor=actor_of(request),
            incident=incident,
            username=data["owner"],
            reason=data["reason"],
        )
        return Response(self._detail(request, pk))

    @extend_schema(request=s.IncidentAttachSerializer, responses=s.IncidentDetailSerializer)
    @action(detail=True, methods=["post"])
    def alerts(self, request: Request, pk: str) -> Response:
        """Add another alert of the team to the incident."""
        incident = selectors.incident_get(request.user, pk)
        data = s.IncidentAttachSerializer.parse(request.data)
        alert = selectors.alert_get(request.user, data["alert"], field="alert")
        incidents.attach_alert(actor=actor_of(request), incident=incident, alert=alert)
        return Response(self._detail(request, pk))
