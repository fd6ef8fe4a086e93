"""Thin DRF views of the caller's side of review: submit an item, read its outcome by reference,
relay an appeal. Parse, look up through the one door (an item or deployment of another team is
"not found", before any permission check could tell it exists), call reviews.submission or
reviews.appeals, serialize. One transaction per request (ATOMIC_REQUESTS)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_PARAM
from core.errors import PayloadTooLarge
from deployments import selectors as deployment_selectors
from identity.audit import actor_of
from identity.idempotency import idempotent
from identity.permissions import Action

from .. import appeals, selectors, submission
from . import serializers as s

REF_PARAM = OpenApiParameter(
    "ref", OpenApiTypes.STR, OpenApiParameter.PATH, description='The item\'s reference, "rv_..."'
)


def _check_size(request: Request) -> None:
    """413 naming the body when it is over REVIEWS_MAX_SUBMISSION_BYTES, before it is parsed:
    the declared length first, then what was read (a body with no Content-Length)."""
    limit = int(settings.REVIEWS_MAX_SUBMISSION_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    size = declared if declared > limit else len(request.body)
    if size > limit:
        raise PayloadTooLarge(
            f"The submission is {size} bytes; the limit is {limit} bytes.", field="body"
        )


@extend_schema(
    tags=["reviews"],
    operation_id="review_submit",
    summary="Submit a prediction for human review",
    description=(
        "Sent by a serving process's outbox (or any service) with a write token of the team "
        "that owns the deployment. 201 when the item is new, 200 with the same item when its "
        "`ref` was already taken in (retries are safe); another ref for the same "
        "(deployment, request_id) is a 409. The deployment must run under a review policy. "
        "A bad field is refused naming it, with nothing written; a body over "
        "REVIEWS_MAX_SUBMISSION_BYTES (64 KiB) is a 413."
    ),
    request=s.SubmissionSerializer,
    responses={
        201: s.SubmissionResultSerializer,
        200: OpenApiResponse(s.SubmissionResultSerializer, description="Already submitted"),
    },
)
@api_view(["POST"])
def submit(request: Request) -> Response:
    _check_size(request)
    data = s.SubmissionSerializer.parse(request.data)
    deployment = deployment_selectors.deployment_get(
        request.user, data.pop("deployment"), field="deployment"
    )
    item, created = submission.submit(actor=actor_of(request), deployment=deployment, values=data)
    return Response(
        s.SubmissionResultSerializer(item).data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@extend_schema(
    tags=["reviews"],
    operation_id="review_outcome",
    summary="Read an item's outcome by reference",
    description=(
        "Members of the owning team and its tokens (read scope is enough). The same body is "
        "POSTed to the deployment's callback URL once decided. Never the input summary."
    ),
    parameters=[REF_PARAM],
    responses=s.OutcomeSerializer,
)
@api_view(["GET"])
def outcome(request: Request, ref: str) -> Response:
    item = selectors.item_for(request.user, ref, Action.REVIEW_OUTCOME)
    return Response(s.OutcomeSerializer(item).data)


@extend_schema(
    tags=["reviews"],
    operation_id="review_appeal",
    summary="Appeal a decision",
    description=(
        "Relay the subject's appeal (a write token of the team). Only a decided level-1 item "
        "without an appeal (else 409 saying why): it reopens as a level-2 review with a new SLA, "
        "decided by someone other than the first reviewer, and that decision is final."
    ),
    parameters=[REF_PARAM, IDEMPOTENCY_PARAM],
    request=s.AppealSerializer,
    responses={201: s.OutcomeSerializer},
)
@api_view(["POST"])
def appeal(request: Request, ref: str) -> Response:
    def handler() -> Response:
        item = selectors.item_for(request.user, ref, Action.REVIEW_APPEAL)
        data = s.AppealSerializer.parse(request.data)
        appeals.appeal(actor=actor_of(request), item=item, statement=data["statement"])
        reopened = selectors.item_for(request.user, ref, Action.REVIEW_APPEAL)
        return Response(s.OutcomeSerializer(reopened).data, status=status.HTTP_201_CREATED)

    return idempotent(request, handler)
