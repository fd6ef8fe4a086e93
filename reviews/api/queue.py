"""The reviewers' API: the queue, an item's review (with its input summary), claiming, releasing,
deciding, taking the next item, and an item's history. Thin DRF views: parse, call
reviews.selectors / reviews.claims / reviews.decisions, serialize. People only: every route
needs REVIEW_VIEW or REVIEW_DECIDE, which identity refuses to CI tokens with the reason. An item
of another team is "not found" (the selectors look it up through `visible_to` first).

`urlpatterns` is included by reviews/api/urls.py, before the outcome route `reviews/<ref>/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core import clock
from deployments import selectors as deployment_selectors
from deployments.models import Deployment
from identity.audit import actor_of
from identity.permissions import Action, can

from .. import claims, decisions, selectors
from ..models import ReviewItem
from . import queue_serializers as s

TAGS = ["reviews"]


def _deployment(request: Request, deployment_id: int | None) -> Deployment | None:
    """The deployment a filter names, if the caller may see it (else 404 naming the field)."""
    if deployment_id is None:
        return None
    return deployment_selectors.deployment_get(request.user, deployment_id, field="deployment")


def review_detail(principal: Any, item: ReviewItem, now: datetime | None = None) -> dict[str, Any]:
    """The review page of an item as the principal sees it now, read afresh (after a claim or a
    decision the service's locked copy lacks the joins)."""
    now = now or clock.now()
    item = selectors.item_for(principal, item.ref, Action.REVIEW_VIEW)
    user = None if getattr(principal, "pk", None) is None else principal
    may_take = (
        can(principal, Action.REVIEW_DECIDE, item)
        and selectors.take_refusal(item, user, now) is None
    )
    return s.ReviewDetailSerializer(item, context={"now": now, "may_take": may_take}).data


@extend_schema(tags=TAGS)
class QueueView(generics.GenericAPIView):
    serializer_class = s.QueueItemSerializer
    queryset = ReviewItem.objects.none()  # for the schema: the rows come from queue_for

    @extend_schema(
        parameters=[
            OpenApiParameter("deployment", OpenApiTypes.INT, OpenApiParameter.QUERY),
            OpenApiParameter("level", OpenApiTypes.INT, OpenApiParameter.QUERY, enum=[1, 2]),
        ],
        responses=s.QueueItemSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        """Open items of the teams where you review, earliest SLA deadline first, each with the
        time left and whether you may take it. Paginated (limit, offset)."""
        query = s.QueueQuerySerializer.parse(request.query_params.dict())
        now = clock.now()
        items = selectors.queue_for(
            request.user,
            deployment=_deployment(request, query.get("deployment")),
            level=query.get("level"),
            now=now,
        )
        page = self.paginate_queryset(items)
        data = s.QueueItemSerializer(page, many=True, context={"now": now}).data
        return self.get_paginated_response(data)


@extend_schema(tags=TAGS)
class ReviewView(APIView):
    @extend_schema(responses=s.ReviewDetailSerializer)
    def get(self, request: Request, ref: str) -> Response:
        """The item as a reviewer decides on it: prediction, reason, input summary, the model's
        explanation, the decision so far and the appeal (at level 2)."""
        item = selectors.item_for(request.user, ref, Action.REVIEW_VIEW)
        return Response(review_detail(request.user, item))


@extend_schema(tags=TAGS)
class ClaimView(APIView):
    @extend_schema(request=None, responses=s.ReviewDetailSerializer)
    def post(self, request: Request, ref: str) -> Response:
        """Take the item for the policy's claim lease (claiming it again renews the lease). 409
        when it is decided or someone else holds it; 403 for an appeal of your own decision."""
        item = selectors.item_for(request.user, ref, Action.REVIEW_VIEW)
        claims.claim(actor=actor_of(request), item=item)
        return Response(review_detail(request.user, item))


@extend_schema(tags=TAGS)
class ReleaseView(APIView):
    @extend_schema(request=s.ReleaseSerializer, responses=s.ReviewDetailSerializer)
    def post(self, request: Request, ref: str) -> Response:
        """Give your claim back to the queue before deciding."""
        item = selectors.item_for(request.user, ref, Action.REVIEW_VIEW)
        data = s.ReleaseSerializer.parse(request.data or {})
        claims.release(actor=actor_of(request), item=item, **data)
        return Response(review_detail(request.user, item))


@extend_schema(tags=TAGS)
class DecideView(APIView):
    @extend_schema(request=s.DecideSerializer, responses=s.ReviewDetailSerializer)
    def post(self, request: Request, ref: str) -> Response:
        """Confirm the prediction or override it with the corrected `output`, with a reason. An
        unclaimed item is claimed on the way; the decision of an appeal (level 2) is final."""
        item = selectors.item_for(request.user, ref, Action.REVIEW_VIEW)
        data = s.DecideSerializer.parse(request.data)
        decisions.decide(
            actor=actor_of(request),
            item=item,
            decision=data["decision"],
            reason=data["reason"],
            corrected_output=data["output"],
        )
        return Response(review_detail(request.user, item))


@extend_schema(tags=TAGS)
class ClaimNextView(APIView):
    @extend_schema(
        request=s.ClaimNextSerializer,
        responses={200: s.ReviewDetailSerializer, 204: None},
    )
    def post(self, request: Request) -> Response:
        """Take the waiting item with the earliest SLA deadline that you may take (optionally
        of one deployment or level). 204 when none waits. Reviewers asking at once never get
        the same item."""
        data = s.ClaimNextSerializer.parse(request.data or {})
        item = claims.claim_next(
            actor=actor_of(request),
            deployment=_deployment(request, data.get("deployment")),
            level=data.get("level"),
        )
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(review_detail(request.user, item))


@extend_schema(tags=TAGS)
class HistoryView(APIView):
    @extend_schema(responses=s.ReviewEventSerializer(many=True))
    def get(self, request: Request, ref: str) -> Response:
        """Who did what to the item, oldest first: submission, claims, decisions, the appeal,
        SLA breaches, retention and callbacks."""
        item = selectors.item_for(request.user, ref, Action.REVIEW_VIEW)
        return Response(s.ReviewEventSerializer(selectors.history_of(item), many=True).data)


urlpatterns = [
    path("reviews/queue", QueueView.as_view(), name="api-review-queue"),
    path("reviews/claim-next", ClaimNextView.as_view(), name="api-review-claim-next"),
    path("reviews/<str:ref>/review", ReviewView.as_view(), name="api-review-detail"),
    path("reviews/<str:ref>/claim", ClaimView.as_view(), name="api-review-claim"),
    path("reviews/<str:ref>/release", ReleaseView.as_view(), name="api-review-release"),
    path("reviews/<str:ref>/decide", DecideView.as_view(), name="api-review-decide"),
    path("reviews/<str:ref>/history", HistoryView.as_view(), name="api-review-history"),
]
