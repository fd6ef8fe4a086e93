"""Every write to teams, memberships and CI tokens: one transaction, one permission check, one
audit event each. The API, the pages and the admin all call these."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed

from . import audit
from .audit import Actor
from .authentication import TOKEN_PREFIX, hash_secret
from .models import ApiToken, Membership, Role, Team, TokenScope, forget_roles
from .permissions import Action, require

MAX_TOKEN_LIFETIME = timedelta(days=366)


# Teams and memberships ---------------------------------------------------------------------


@transaction.atomic
def team_create(*, actor: Actor, slug: str, name: str, description: str = "") -> Team:
    """Create a team; the creating user becomes its owner. Only superusers create teams."""
    if actor.principal is not None and not getattr(actor.principal, "is_superuser", False):
        raise Forbidden("Only platform administrators create teams.")
    if Team.objects.filter(slug=slug).exists():
        raise Conflict(f"a team named {slug!r} already exists", field="slug")
    team = Team.objects.create(slug=slug, name=name or slug, description=description)
    audit.record(
        actor=actor,
        action="team.create",
        target=team,
        after=audit.snapshot(team, ("slug", "name", "description")),
    )
    if actor.user is not None:
        membership_set(
            actor=Actor.system("team-bootstrap"),
            team=team,
            username=actor.user.get_username(),
            role=Role.OWNER,
        )
    return team


@transaction.atomic
def membership_set(
    *,
    actor: Actor,
    team: Team,
    username: str,
    role: str,
    is_approver: bool | None = None,
    is_on_call: bool | None = None,
    is_reviewer: bool | None = None,
) -> Membership:
    """Add a member or change a member's role and duties. Permission comes before the user
    lookup, so only those who manage members learn which usernames exist."""
    require(actor.principal, Action.TEAM_MANAGE_MEMBERS, team)
    user = _user_named(username, missing=ValidationFailed)
    if role not in Role.values:
        raise ValidationFailed(f"must be one of {', '.join(Role.values)}", field="role")
    membership = Membership.objects.select_for_update().filter(team=team, user=user).first()
    fields = ("role", "is_approver", "is_on_call", "is_reviewer")
    before = audit.snapshot(membership, fields) if membership else None
    if membership is None:
        membership = Membership(team=team, user=user)
    elif membership.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(team, membership)
    membership.role = role
    for name, value in (
        ("is_approver", is_approver),
        ("is_on_call", is_on_call),
        ("is_reviewer", is_reviewer),
    ):
        if value is not None:
            setattr(membership, name, value)
    membership.save()
    after = audit.snapshot(membership, fields)
    if before != after:
        audit.record(
            actor=actor,
            action="membership.set",
            target=membership,
            team_id=team.pk,
            before=before,
            after={"user": user.get_username(), **after},
        )
    forget_roles(actor.principal)
    return membership


def _ensure_another_owner(team: Team, leaving: Membership) -> None:
    if not Membership.objects.filter(team=team, role=Role.OWNER).exclude(pk=leaving.pk).exists():
        raise Conflict("a team must keep at least one owner", field="role")


@transaction.atomic
def membership_remove(*, actor: Actor, team: Team, username: str) -> None:
    """Remove a member; as for membership_set, permission comes before the user lookup."""
    require(actor.principal, Action.TEAM_MANAGE_MEMBERS, team)
    user = _user_named(username, missing=NotFound)
    membership = Membership.objects.select_for_update().filter(team=team, user=user).first()
    if membership is None:
        raise NotFound(f"{user.get_username()} is not a member of {team.slug}", field="user")
    if membership.role == Role.OWNER:
        _ensure_another_owner(team, membership)
    before = {"user": user.get_username(), **audit.snapshot(membership, ("role",))}
    audit.record(
        actor=actor, action="membership.remove", target=membership, team_id=team.pk, before=before
    )
    membership.delete()
    forget_roles(actor.principal)


# API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the caller once, never stored


@transaction.atomic
def token_create(
    *, actor: Actor, team: Team, name: str, scopes: list[str], expires_at: datetime
) -> IssuedToken:
    require(actor.principal, Action.TEAM_MANAGE_TOKENS, team)
    if not name or len(name) > 100:
        raise ValidationFailed("must be 1 to 100 characters", field="name")
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= set(TokenScope.values):
        raise ValidationFailed(f"must be a non-empty subset of {TokenScope.values}", field="scopes")
    now = timezone.now()
    if expires_at <= now:
        raise ValidationFailed("must be in the future", field="expires_at")
    if expires_at > now + MAX_TOKEN_LIFETIME:
        raise ValidationFailed("tokens may live at most 366 days", field="expires_at")
    if ApiToken.objects.filter(team=team, name=name).exists():
        raise Conflict(f"team {team.slug} already has a token named {name!r}", field="name")
    body = secrets.token_urlsafe(32)
    prefix = body[:8]
    secret = f"{TOKEN_PREFIX}{body}"
    token = ApiToken.objects.create(
        team=team,
        name=name,
        prefix=f"{TOKEN_PREFIX}{prefix}",
        secret_hash=hash_secret(secret),
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=actor.user,
    )
    audit.record(
        actor=actor,
        action="token.create",
        target=token,
        after=audit.snapshot(token, ("name", "prefix", "scopes", "expires_at")),
    )
    return IssuedToken(token=token, secret=secret)


@transaction.atomic
def token_revoke(*, actor: Actor, token: ApiToken) -> ApiToken:
    require(actor.principal, Action.TEAM_MANAGE_TOKENS, token.team)
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit.record(
            actor=actor,
            action="token.revoke",
            target=token,
            after=audit.snapshot(token, ("prefix", "revoked_at")),
        )
    return token


def _user_named(username: str, *, missing: type[DomainError]) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise missing(f"no user named {username!r}", field="username")
    return user
