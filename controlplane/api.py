"""Shared API plumbing: strict serializers (unknown fields are errors), RFC 9457 error responses
in the OpenAPI schema, and Idempotency-Key handling for POSTs from CI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from .audit import Actor
from .errors import Conflict, ValidationFailed
from .permissions import is_token


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"not_a_string": "Must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictSlugField(StrictCharField, serializers.SlugField):
    pass


class StrictIntegerField(serializers.IntegerField):
    """An integer field that refuses "5" and true."""

    default_error_messages = {"not_an_integer": "Must be an integer, not {kind}."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, instead of silently dropping them (a typo in a CI
    script must fail loudly, not register a version without its schema)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    @classmethod
    def parse(cls, data: Any, **kwargs: Any) -> dict[str, Any]:
        """Validate a request body and return its data, or raise a 400 naming the fields."""
        serializer = cls(data=data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class ProblemErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="Dotted path of the field at fault")
    reason = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every error of this API is answered."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField(required=False)
    errors = ProblemErrorSerializer(many=True, required=False)


class ProblemAutoSchema(AutoSchema):
    """Adds the error responses every operation can give, so CI authors see them documented."""

    def _get_response_bodies(self, direction: str = "response") -> dict:  # type: ignore[override]
        responses = super()._get_response_bodies(direction)
        codes = {"401": "Not authenticated", "403": "Forbidden", "404": "Not found"}
        if self.method in {"POST", "PUT", "PATCH"}:
            codes |= {
                "400": "Malformed JSON, or a field missing, unknown or of the wrong type",
                "409": "Conflicts with the current state (duplicate, wrong state, "
                "idempotency race)",
                "413": "Request body over the configured limit",
                "415": "Unsupported content type (send application/json)",
                "422": "Semantically invalid (invalid JSON Schema, digest mismatch, "
                "Idempotency-Key reused with another body)",
            }
        for code, description in codes.items():
            if code in responses:
                continue
            response = self._get_response_for_code(
                ProblemSerializer, code, media_types=["application/problem+json"]
            )
            response["description"] = description
            responses[code] = response
        return responses


IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_PARAM = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe POST: a retry with the same key and body returns the first result.",
)


def actor_of(request: Request) -> Actor:
    """Who a request acts as, for services and the audit log."""
    return Actor.from_principal(request.user)


def principal_key(principal: Any) -> str:
    if is_token(principal):
        return f"token:{principal.token.pk}"
    return f"user:{principal.pk}"


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run a POST once per Idempotency-Key: a retry with the same key and body gets the first
    answer and creates nothing; the same key with another body is refused with 422."""
    from registry.models import IdempotencyRecord

    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return handler()
    if not 1 <= len(key) <= 200:
        raise ValidationFailed("must be 1 to 200 characters", field=IDEMPOTENCY_HEADER)
    principal = principal_key(request.user)
    canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    body_sha = hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
    existing = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
    if existing is not None:
        if existing.body_sha256 != body_sha:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request", field=IDEMPOTENCY_HEADER
            )
        replay = Response(existing.response_body, status=existing.status_code)
        replay["Idempotent-Replayed"] = "true"
        return replay
    response = handler()
    if 200 <= response.status_code < 300:
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    principal=principal,
                    key=key,
                    method=request.method,
                    path=request.path[:500],
                    body_sha256=body_sha,
                    status_code=response.status_code,
                    response_body=response.data,
                )
        except IntegrityError:
            # A concurrent request with the same key won: roll this one back entirely.
            raise Conflict(
                "a request with this Idempotency-Key is being processed; retry it",
                field=IDEMPOTENCY_HEADER,
            ) from None
    return response
