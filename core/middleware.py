"""Request plumbing: a request id on every request (echoed as X-Request-ID) and a body-size
limit that answers 413 before anything parses the body."""

from __future__ import annotations

import re
from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from .context import new_request_id, request_context
from .errors import PayloadTooLarge

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        remote_addr = request.META.get("REMOTE_ADDR", "")
        with (
            request_context(request_id, remote_addr),
            structlog.contextvars.bound_contextvars(request_id=request_id),
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class BodySizeLimitMiddleware:
    """413 for any body over MAX_REQUEST_BODY_BYTES, judged by Content-Length up front."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BODY_BYTES
        if length > limit:
            error = PayloadTooLarge(
                f"The request body is {length} bytes; the limit is {limit} bytes.", field="body"
            )
            return JsonResponse(
                error.problem(request.path), status=413, content_type="application/problem+json"
            )
        return self.get_response(request)
