"""The one place that says who may do what to which object. The API, the pages, the admin and
the workers all ask `can()` / `require()` here, and list views filter through
`visible_team_ids()` (used by each model's `visible_to()` queryset).

Visibility decision: a model and everything under it is visible to the members of its owning
team (and to superusers), not across teams. Deployment configs carry secret references and
release policy, and least privilege is the safer default for an internal platform; a team that
wants a wider audience adds people as viewers.
"""

from __future__ import annotations

import enum
from typing import Any

from .errors import Forbidden


class Action(enum.StrEnum):
    TEAM_VIEW = "team.view"
    TEAM_MANAGE_MEMBERS = "team.manage_members"
    TEAM_MANAGE_TOKENS = "team.manage_tokens"
    MODEL_VIEW = "model.view"
    MODEL_CREATE = "model.create"
    MODEL_CHANGE = "model.change"
    MODEL_CHANGE_RISK_TIER = "model.change_risk_tier"
    VERSION_REGISTER = "version.register"
    VERSION_UPDATE = "version.update"
    ALIAS_SET = "alias.set"
    AUDIT_VIEW = "audit.view"


ROLE_RANK = {"viewer": 1, "maintainer": 2, "owner": 3}

# Lowest team role that may take each action.
REQUIRED_ROLE: dict[Action, str] = {
    Action.TEAM_VIEW: "viewer",
    Action.TEAM_MANAGE_MEMBERS: "owner",
    Action.TEAM_MANAGE_TOKENS: "owner",
    Action.MODEL_VIEW: "viewer",
    Action.MODEL_CREATE: "maintainer",
    Action.MODEL_CHANGE: "maintainer",
    Action.MODEL_CHANGE_RISK_TIER: "owner",
    Action.VERSION_REGISTER: "maintainer",
    Action.VERSION_UPDATE: "maintainer",
    Action.ALIAS_SET: "maintainer",
    Action.AUDIT_VIEW: "viewer",
}

# A CI token acts with its team's rights only, capped by its scopes: never an owner.
TOKEN_SCOPE_ROLE = {"read": "viewer", "write": "maintainer"}


class TokenPrincipal:
    """What `request.user` is for a request authenticated by a CI token."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    id = None

    def __init__(self, token: Any):
        self.token = token

    def __str__(self) -> str:
        return f"token:{self.token.prefix}"

    @property
    def username(self) -> str:
        return str(self)


def is_token(principal: Any) -> bool:
    return isinstance(principal, TokenPrincipal)


def team_roles(principal: Any) -> dict[int, str]:
    """team id -> role for this principal, loaded once per principal object (one query)."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return {}
    cached = getattr(principal, "_modelplane_team_roles", None)
    if cached is not None:
        return cached
    if is_token(principal):
        token = principal.token
        ranks = [ROLE_RANK[TOKEN_SCOPE_ROLE[s]] for s in token.scopes if s in TOKEN_SCOPE_ROLE]
        roles = {}
        if ranks:
            best = max(ranks)
            roles = {token.team_id: next(r for r, n in ROLE_RANK.items() if n == best)}
    else:
        from registry.models import Membership

        roles = dict(Membership.objects.filter(user=principal).values_list("team_id", "role"))
    principal._modelplane_team_roles = roles
    return roles


def forget_roles(principal: Any) -> None:
    """Drop the cached roles (after a membership change in the same request)."""
    if hasattr(principal, "_modelplane_team_roles"):
        del principal._modelplane_team_roles


def is_superuser(principal: Any) -> bool:
    return bool(getattr(principal, "is_superuser", False)) and not is_token(principal)


def visible_team_ids(principal: Any) -> set[int] | None:
    """Teams whose objects this principal may read; None means all (superusers, the system)."""
    if principal is None:
        return None  # the system itself (workers, management commands)
    if is_superuser(principal):
        return None
    return set(team_roles(principal))


def team_id_of(obj: Any) -> int:
    """The owning team of any registry or deployment object."""
    from registry.models import Team

    if isinstance(obj, Team):
        return obj.pk
    for path in (
        "team_id",
        "model.team_id",
        "deployment.model.team_id",
        "release.deployment.model.team_id",
    ):
        value: Any = obj
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        if value is not None:
            return int(value)
    raise TypeError(f"cannot tell the owning team of {type(obj).__name__}")


def can(principal: Any, action: Action, obj: Any) -> bool:
    if principal is None:
        return True  # the system acts on behalf of the control plane itself
    if not getattr(principal, "is_authenticated", False):
        return False
    if is_superuser(principal):
        return True
    role = team_roles(principal).get(team_id_of(obj))
    if role is None:
        return False
    return ROLE_RANK[role] >= ROLE_RANK[REQUIRED_ROLE[action]]


def require(principal: Any, action: Action, obj: Any) -> None:
    if not can(principal, action, obj):
        raise Forbidden(f"You may not {action.value.replace('.', ' ').replace('_', ' ')} here.")
