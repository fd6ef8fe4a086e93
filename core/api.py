"""Shared API plumbing: strict serializers (unknown fields are errors), RFC 9457 error responses
in the OpenAPI schema, and the Idempotency-Key parameter (its records live in identity)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS


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


class ReadsWithoutTransaction:
    """Viewset mixin: reads (GET, HEAD, OPTIONS) run in autocommit, writes in one transaction.

    ATOMIC_REQUESTS wraps every view in BEGIN ... COMMIT, two extra round trips for a read that
    runs one or two SELECTs (a CI pipeline polls these endpoints). Writes keep exactly the
    behaviour ATOMIC_REQUESTS gives them: the whole request is one transaction, an error handled
    by the exception handler rolls it back (set_rollback), and an escaping exception too. A read
    that runs inside a transaction someone else opened (a test's, a caller's) gets a savepoint as
    before, so that an error's set_rollback never marks the outer transaction."""

    @classmethod
    def as_view(cls, *args: Any, **kwargs: Any) -> Any:
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))  # type: ignore[misc]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method in SAFE_METHODS and not transaction.get_connection().in_atomic_block:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        with transaction.atomic():
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
