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
    DEPLOYMENT_VIEW = "deployment.view"
    DEPLOYMENT_MANAGE = "deployment.manage"
    DEPLOYMENT_ROLLBACK = "deployment.rollback"
    RELEASE_CREATE = "release.create"
    RELEASE_APPROVE = "release.approve"
    RELEASE_OPERATE = "release.operate"
    ENVIRONMENT_MANAGE = "environment.manage"


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
    Action.DEPLOYMENT_VIEW: "viewer",
    Action.DEPLOYMENT_MANAGE: "maintainer",
    Action.DEPLOYMENT_ROLLBACK: "maintainer",
    Action.RELEASE_CREATE: "maintainer",
    Action.RELEASE_APPROVE: "viewer",  # plus the approver duty, below
    Action.RELEASE_OPERATE: "maintainer",
}

# Duties that are not a rank: they grant an action on their own (on-call engineers roll back
# whatever their rank) or are required on top of the rank (approving needs the approver duty).
DUTY_GRANTS: dict[Action, str] = {Action.DEPLOYMENT_ROLLBACK: "is_on_call"}
DUTY_REQUIRED: dict[Action, str] = {Action.RELEASE_APPROVE: "is_approver"}
# Never done by a CI token, whatever its scopes: a human decides.
HUMAN_ONLY = {Action.RELEASE_APPROVE, Action.ENVIRONMENT_MANAGE}
# Platform-wide actions, for superusers only.
PLATFORM_ONLY = {Action.ENVIRONMENT_MANAGE}

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


def team_memberships(principal: Any) -> dict[int, dict[str, Any]]:
    """team id -> {"role", "is_approver", "is_on_call", "is_reviewer"} for this principal,
    loaded once per principal object (one query)."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return {}
    cached = getattr(principal, "_modelplane_team_roles", None)
    if cached is not None:
        return cached
    memberships: dict[int, dict[str, Any]] = {}
    if is_token(principal):
        token = principal.token
        ranks = [ROLE_RANK[TOKEN_SCOPE_ROLE[s]] for s in token.scopes if s in TOKEN_SCOPE_ROLE]
        if ranks:
            best = max(ranks)
            role = next(r for r, n in ROLE_RANK.items() if n == best)
            memberships = {token.team_id: {"role": role}}
    else:
        from registry.models import Membership

        rows = Membership.objects.filter(user=principal).values(
            "team_id", "role", "is_approver", "is_on_call", "is_reviewer"
        )
        memberships = {row.pop("team_id"): row for row in rows}
    principal._modelplane_team_roles = memberships
    return memberships


def team_roles(principal: Any) -> dict[int, str]:
    """team id -> role for this principal."""
    return {team_id: m["role"] for team_id, m in team_memberships(principal).items()}


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
    if is_token(principal) and action in HUMAN_ONLY:
        return False
    if is_superuser(principal):
        return True
    if action in PLATFORM_ONLY:
        return False
    membership = team_memberships(principal).get(team_id_of(obj))
    if membership is None:
        return False
    if action in DUTY_REQUIRED and not membership.get(DUTY_REQUIRED[action]):
        return False
    if action in DUTY_GRANTS and membership.get(DUTY_GRANTS[action]):
        return True
    return ROLE_RANK[membership["role"]] >= ROLE_RANK[REQUIRED_ROLE[action]]


def can_read_platform_metrics(principal: Any) -> bool:
    """The control plane's own /metrics names every team's deployments: platform staff (a staff
    or superuser session) or a CI token of any team with at least read scope (for dashboards)."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return False
    if is_token(principal):
        return any(ROLE_RANK[r] >= ROLE_RANK["viewer"] for r in team_roles(principal).values())
    return is_superuser(principal) or bool(getattr(principal, "is_staff", False))


def require(principal: Any, action: Action, obj: Any) -> None:
    if not can(principal, action, obj):
        raise Forbidden(f"You may not {action.value.replace('.', ' ').replace('_', ' ')} here.")
