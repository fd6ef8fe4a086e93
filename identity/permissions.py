"""The one place that says who may do what to which object. The API, the pages, the admin and
the workers all ask `can()` / `require()` here, and list views filter through
`visible_to()` (models.TeamScopedQuerySet), which reads the same memberships.

Visibility decision: a model and everything under it is visible to the members of its owning
team (and to superusers), not across teams. Deployment configs carry secret references and
release policy, and least privilege is the safer default for an internal platform; a team that
wants a wider audience adds people as viewers.
"""

from __future__ import annotations

import enum
from typing import Any

from core.errors import Forbidden

from .models import ROLE_RANK, Role, team_memberships, team_roles
from .principals import is_superuser, is_token


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
    ALERT_VIEW = "alert.view"
    ALERT_RESPOND = "alert.respond"  # acknowledge, silence, reassign, resolve, note
    ALERT_INGEST = "alert.ingest"  # Alertmanager's webhook
    ONCALL_MANAGE = "oncall.manage"  # schedules, overrides, escalation policies, channels
    INCIDENT_VIEW = "incident.view"
    INCIDENT_MANAGE = "incident.manage"  # open, note, change, close
    REVIEW_VIEW = "review.view"  # the queue and the items, input summaries included
    REVIEW_DECIDE = "review.decide"  # claim, release, confirm or override
    REVIEW_SUBMIT = "review.submit"  # a serving process (or any service) submits items
    REVIEW_OUTCOME = "review.outcome"  # read an item's decision by reference (no input summary)
    REVIEW_APPEAL = "review.appeal"  # relay a subject's appeal


# Lowest team role that may take each action.
REQUIRED_ROLE: dict[Action, Role] = {
    Action.TEAM_VIEW: Role.VIEWER,
    Action.TEAM_MANAGE_MEMBERS: Role.OWNER,
    Action.TEAM_MANAGE_TOKENS: Role.OWNER,
    Action.MODEL_VIEW: Role.VIEWER,
    Action.MODEL_CREATE: Role.MAINTAINER,
    Action.MODEL_CHANGE: Role.MAINTAINER,
    Action.MODEL_CHANGE_RISK_TIER: Role.OWNER,
    Action.VERSION_REGISTER: Role.MAINTAINER,
    Action.VERSION_UPDATE: Role.MAINTAINER,
    Action.ALIAS_SET: Role.MAINTAINER,
    Action.AUDIT_VIEW: Role.VIEWER,
    Action.DEPLOYMENT_VIEW: Role.VIEWER,
    Action.DEPLOYMENT_MANAGE: Role.MAINTAINER,
    Action.DEPLOYMENT_ROLLBACK: Role.MAINTAINER,
    Action.RELEASE_CREATE: Role.MAINTAINER,
    Action.RELEASE_APPROVE: Role.VIEWER,  # plus the approver duty, below
    Action.RELEASE_OPERATE: Role.MAINTAINER,
    Action.ALERT_VIEW: Role.VIEWER,
    Action.ALERT_RESPOND: Role.OWNER,  # or the assignee, or the team's on-call (below)
    Action.ALERT_INGEST: Role.MAINTAINER,  # a write-scoped token of the team
    Action.ONCALL_MANAGE: Role.MAINTAINER,
    Action.INCIDENT_VIEW: Role.VIEWER,
    Action.INCIDENT_MANAGE: Role.MAINTAINER,  # or the team's on-call (below)
    Action.REVIEW_VIEW: Role.VIEWER,  # plus the reviewer duty, below
    Action.REVIEW_DECIDE: Role.VIEWER,  # plus the reviewer duty, below
    Action.REVIEW_SUBMIT: Role.MAINTAINER,  # a write-scoped token of the team
    Action.REVIEW_OUTCOME: Role.VIEWER,
    Action.REVIEW_APPEAL: Role.MAINTAINER,  # a write-scoped token of the team
}

# Duties that are not a rank: they grant an action on their own (on-call engineers roll back
# whatever their rank) or are required on top of the rank (approving needs the approver duty).
DUTY_GRANTS: dict[Action, str] = {
    Action.DEPLOYMENT_ROLLBACK: "is_on_call",
    Action.ALERT_RESPOND: "is_on_call",
    Action.INCIDENT_MANAGE: "is_on_call",
}
# Granted to the person an object is assigned to (its `assignee_id`), whatever their rank.
ASSIGNEE_GRANTS = frozenset({Action.ALERT_RESPOND})
DUTY_REQUIRED: dict[Action, str] = {
    Action.RELEASE_APPROVE: "is_approver",
    Action.REVIEW_VIEW: "is_reviewer",
    Action.REVIEW_DECIDE: "is_reviewer",
}
# Never done by a CI token, whatever its scopes: a person decides. Action -> what is refused.
HUMAN_ONLY: dict[Action, str] = {
    Action.RELEASE_APPROVE: "approve or reject releases",
    Action.ENVIRONMENT_MANAGE: "manage environments",
    Action.ALERT_RESPOND: "acknowledge, silence or reassign alerts",
    Action.ONCALL_MANAGE: "change on-call schedules or escalation policies",
    Action.INCIDENT_MANAGE: "run incidents",
    Action.REVIEW_VIEW: "read review items",
    Action.REVIEW_DECIDE: "claim or decide review items",
}
# Four eyes: never done by the person who wrote the object (its `author_id`), whatever their
# role or duties, superusers included. Action -> the reason a refusal gives.
NOT_BY_AUTHOR: dict[Action, str] = {
    Action.RELEASE_APPROVE: "the author of a release cannot approve or reject it",
}
# Platform-wide actions, for superusers only.
PLATFORM_ONLY = {Action.ENVIRONMENT_MANAGE}


def team_id_of(obj: Any) -> int | None:
    """The owning team of any team-owned row, by the path its model names in `team_path`."""
    path = getattr(type(obj), "team_path", None)
    if path is None:
        raise TypeError(f"cannot tell the owning team of {type(obj).__name__}")
    value: Any = obj
    for part in path.split("__"):
        value = getattr(value, part)
    return None if value is None else int(value)


def refusal(principal: Any, action: Action, obj: Any) -> str | None:
    """Why `principal` may not take `action` on `obj`, or None when it may. The rules that hold
    whatever the role (a person decides, the author never approves) come first, so that a
    refusal names them."""
    if principal is None:
        return None  # the system acts on behalf of the control plane itself
    denied = f"You may not {action.value.replace('.', ' ').replace('_', ' ')} here."
    if not getattr(principal, "is_authenticated", False):
        return denied
    if is_token(principal) and action in HUMAN_ONLY:
        return f"CI tokens cannot {HUMAN_ONLY[action]}; a person decides."
    if action in NOT_BY_AUTHOR and obj.author_id is not None and obj.author_id == principal.pk:
        return NOT_BY_AUTHOR[action]
    if is_superuser(principal):
        return None
    if action in PLATFORM_ONLY:
        return denied
    membership = team_memberships(principal).get(team_id_of(obj))
    if membership is None:
        return denied
    if action in DUTY_REQUIRED and not membership.get(DUTY_REQUIRED[action]):
        return denied
    if action in DUTY_GRANTS and membership.get(DUTY_GRANTS[action]):
        return None
    if action in ASSIGNEE_GRANTS and getattr(obj, "assignee_id", None) == principal.pk:
        return None
    if ROLE_RANK[membership["role"]] < ROLE_RANK[REQUIRED_ROLE[action]]:
        return denied
    return None


def can(principal: Any, action: Action, obj: Any) -> bool:
    return refusal(principal, action, obj) is None


def can_read_platform_metrics(principal: Any) -> bool:
    """The control plane's own /metrics names every team's deployments: platform staff (a staff
    or superuser session) or a CI token of any team with at least read scope (for dashboards)."""
    if principal is None or not getattr(principal, "is_authenticated", False):
        return False
    if is_token(principal):
        return any(ROLE_RANK[r] >= ROLE_RANK[Role.VIEWER] for r in team_roles(principal).values())
    return is_superuser(principal) or bool(getattr(principal, "is_staff", False))


def require(principal: Any, action: Action, obj: Any) -> None:
    reason = refusal(principal, action, obj)
    if reason is not None:
        raise Forbidden(reason)
