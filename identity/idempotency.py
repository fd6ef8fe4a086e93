"""Idempotency-Key handling for POSTs from CI: a retry with the same key and body replays the
first answer. Records are kept per principal (a user or a CI token)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import IDEMPOTENCY_HEADER
from core.errors import Conflict, ValidationFailed

from .models import IdempotencyRecord
from .principals import is_token


def principal_key(principal: Any) -> str:
    if is_token(principal):
        return f"token:{principal.token.pk}"
    return f"user:{principal.pk}"


def idempotent(request: Request, handler: Callable[[], Response]) -> Response:
    """Run a POST once per Idempotency-Key: a retry with the same key and body gets the first
    answer and creates nothing; the same key with another body is refused with 422."""
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
