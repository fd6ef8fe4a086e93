"""Domain errors and their one mapping to HTTP: RFC 9457 problem documents for the API and a
message for pages. Services raise these; views never invent their own error shapes."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class DomainError(Exception):
    """A rule of the domain said no. Carries the field at fault (or None) and a human reason."""

    status_code = 400
    title = "Invalid request"
    type_slug = "invalid-request"

    def __init__(self, reason: str, *, field: str | None = None, errors: list[dict] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.errors = errors if errors is not None else ([{"field": field, "reason": reason}])

    def problem(self, instance: str = "") -> dict[str, Any]:
        return problem_document(
            status=self.status_code,
            title=self.title,
            detail=self.reason,
            type_slug=self.type_slug,
            errors=self.errors,
            instance=instance,
        )


class ValidationFailed(DomainError):
    status_code = 422
    title = "Validation failed"
    type_slug = "validation-failed"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class NotFound(DomainError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class Forbidden(DomainError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class DigestMismatch(ValidationFailed):
    title = "Artifact digest mismatch"
    type_slug = "digest-mismatch"


class PayloadTooLarge(DomainError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


def problem_document(
    *,
    status: int,
    title: str,
    detail: str,
    type_slug: str,
    errors: list[dict] | None = None,
    instance: str = "",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": f"/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        doc["instance"] = instance
    if errors:
        doc["errors"] = errors
    return doc


def _flatten_drf_detail(detail: Any, prefix: str = "") -> list[dict]:
    """Turn DRF's nested error dicts/lists into [{"field": "a.b[0]", "reason": "..."}]."""
    out: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # ListField/DictField errors are keyed by position
                path = f"{prefix}[{key}]"
            else:
                name = "" if key == "non_field_errors" else str(key)
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(_flatten_drf_detail(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.extend({"field": prefix or None, "reason": str(item)} for item in detail)
        else:
            for index, item in enumerate(detail):
                out.extend(_flatten_drf_detail(item, f"{prefix}[{index}]"))
    else:
        out.append({"field": prefix or None, "reason": str(detail)})
    return out


_DRF_TYPES = {
    400: ("Invalid request", "invalid-request"),
    401: ("Not authenticated", "not-authenticated"),
    403: ("Forbidden", "forbidden"),
    404: ("Not found", "not-found"),
    405: ("Method not allowed", "method-not-allowed"),
    406: ("Not acceptable", "not-acceptable"),
    413: ("Payload too large", "payload-too-large"),
    415: ("Unsupported media type", "unsupported-media-type"),
    429: ("Too many requests", "throttled"),
}


def problem_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every error leaves as application/problem+json and rolls back."""
    from rest_framework.views import set_rollback  # late: rest_framework.views imports settings

    request = context.get("request")
    instance = request.path if request is not None else ""
    if isinstance(exc, DomainError):
        set_rollback()
        return _problem_response(exc.problem(instance), exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge("The request body is larger than the configured limit.")
        set_rollback()
        return _problem_response(exc.problem(instance), 413)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None  # a real bug: let Django log it and answer 500
    set_rollback()
    status = exc.status_code
    title, slug = _DRF_TYPES.get(status, ("Error", "error"))
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten_drf_detail(exc.detail)
        detail = "; ".join(
            f"{e['field']}: {e['reason']}" if e["field"] else e["reason"] for e in errors
        )
        title, slug = "Validation failed", "validation-failed"
    elif isinstance(exc, drf_exceptions.ParseError):
        errors = [{"field": None, "reason": str(exc.detail)}]
        detail = f"Malformed request body: {exc.detail}"
    else:
        errors = []
        detail = str(exc.detail)
    response = _problem_response(
        problem_document(
            status=status,
            title=title,
            detail=detail,
            type_slug=slug,
            errors=errors,
            instance=instance,
        ),
        status,
    )
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        response["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    return response


def _problem_response(doc: dict, status: int) -> Response:
    return Response(doc, status=status, content_type="application/problem+json")
