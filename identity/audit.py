"""Writing the audit log: one append-only event per state change, from any entry point. Callers
pass names and references only; secrets (token values, passwords) must never be given here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from rest_framework.request import Request

from core.context import current_request_meta

from .models import AuditEvent
from .permissions import team_id_of
from .principals import TokenPrincipal

SECRET_FIELD_NAMES = {"password", "secret", "secret_hash", "token", "value", "api_key"}


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user, a CI token, or the system (a worker, a sweep)."""

    type: str
    id: str
    label: str
    principal: Any = None  # the User or TokenPrincipal; None for the system

    @classmethod
    def from_principal(cls, principal: Any) -> Actor:
        if isinstance(principal, TokenPrincipal):
            token = principal.token
            return cls("token", str(token.pk), f"token:{token.team.slug}/{token.name}", principal)
        return cls("user", str(principal.pk), principal.get_username(), principal)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", "", f"system:{name}", None)

    @property
    def user(self) -> Any:
        return self.principal if self.type == "user" else None

    @property
    def token(self) -> Any:
        return self.principal.token if self.type == "token" else None


def actor_of(request: Request) -> Actor:
    """Who an API request acts as, for services and the audit log."""
    return Actor.from_principal(request.user)


def snapshot(obj: models.Model, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """A JSON-safe before/after view of some fields of a row (never secret fields)."""
    out: dict[str, Any] = {}
    for name in fields:
        if name in SECRET_FIELD_NAMES:
            continue
        value = getattr(obj, name)
        if isinstance(value, models.Model):
            value = value.pk
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[name] = value
    return out


def record(
    *,
    actor: Actor,
    action: str,
    target: models.Model,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
    team_id: int | None = None,
) -> Any:
    for doc in (before, after):
        if doc and SECRET_FIELD_NAMES & set(doc):
            raise ValueError("secret fields must never reach the audit log")
    if team_id is None:
        try:
            team_id = team_id_of(target)
        except TypeError:
            team_id = None
    meta = current_request_meta()
    return AuditEvent.objects.create(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        target_label=str(target)[:300],
        team_id=team_id,
        before=before,
        after=after,
        reason=reason,
        request_id=meta.request_id,
        remote_addr=meta.remote_addr,
    )
