"""Every write to the registry: one transaction, one permission check, one audit event each.
The API, the pages and the admin all call these; none of them writes registry rows itself."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, Forbidden, NotFound, ValidationFailed
from controlplane.permissions import Action, forget_roles, require

from . import validation
from .authentication import TOKEN_PREFIX, hash_secret
from .models import (
    VERSION_STATUS_TRANSITIONS,
    Alias,
    ApiToken,
    Membership,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    Role,
    Team,
    TokenScope,
)

MAX_TOKEN_LIFETIME = timedelta(days=366)


def _check_tags(tags: Any, field: str = "tags") -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
        raise ValidationFailed("must be a list of strings of 1 to 64 characters", field=field)
    return sorted(set(tags))


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
            actor=Actor.system("team-bootstrap"), team=team, user=actor.user, role=Role.OWNER
        )
    return team


@transaction.atomic
def membership_set(
    *,
    actor: Actor,
    team: Team,
    user: Any,
    role: str,
    is_approver: bool | None = None,
    is_on_call: bool | None = None,
    is_reviewer: bool | None = None,
) -> Membership:
    require(actor.principal, Action.TEAM_MANAGE_MEMBERS, team)
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
def membership_remove(*, actor: Actor, team: Team, user: Any) -> None:
    require(actor.principal, Action.TEAM_MANAGE_MEMBERS, team)
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


# Models ---------------------------------------------------------------------------------------


@transaction.atomic
def model_create(
    *,
    actor: Actor,
    team: Team,
    name: str,
    risk_tier: str = RiskTier.MEDIUM,
    description: str = "",
    tags: list[str] | None = None,
) -> RegisteredModel:
    require(actor.principal, Action.MODEL_CREATE, team)
    if risk_tier not in RiskTier.values:
        raise ValidationFailed(f"must be one of {', '.join(RiskTier.values)}", field="risk_tier")
    if risk_tier != RiskTier.MEDIUM:
        # Choosing a tier other than the default is the owner's call, as changing it is.
        require(actor.principal, Action.MODEL_CHANGE_RISK_TIER, team)
    if RegisteredModel.objects.filter(name=name).exists():
        raise Conflict(f"a model named {name!r} already exists", field="name")
    model = RegisteredModel.objects.create(
        team=team,
        name=name,
        risk_tier=risk_tier,
        description=description,
        tags=_check_tags(tags or []),
    )
    audit.record(
        actor=actor,
        action="model.create",
        target=model,
        after=audit.snapshot(model, ("name", "team", "risk_tier", "description", "tags")),
    )
    return model


@transaction.atomic
def model_update(*, actor: Actor, model: RegisteredModel, **changes: Any) -> RegisteredModel:
    allowed = {"description", "tags", "risk_tier"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed("cannot be changed", field=sorted(unknown)[0])
    require(actor.principal, Action.MODEL_CHANGE, model)
    if "risk_tier" in changes:
        require(actor.principal, Action.MODEL_CHANGE_RISK_TIER, model)
        if changes["risk_tier"] not in RiskTier.values:
            raise ValidationFailed(
                f"must be one of {', '.join(RiskTier.values)}", field="risk_tier"
            )
    if "tags" in changes:
        changes["tags"] = _check_tags(changes["tags"])
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    fields = tuple(sorted(changes))
    before = audit.snapshot(model, fields)
    for name, value in changes.items():
        setattr(model, name, value)
    after = audit.snapshot(model, fields)
    if before != after:
        model.save()
        audit.record(actor=actor, action="model.update", target=model, before=before, after=after)
    return model


# Versions -------------------------------------------------------------------------------------


@transaction.atomic
def version_register(
    *,
    actor: Actor,
    model: RegisteredModel,
    artifact_uri: str,
    artifact_digest: str,
    input_schema: dict,
    output_schema: dict | None = None,
    image: str = "",
    framework: str = "",
    config: dict | None = None,
    example_requests: list | None = None,
    training_metrics: dict | None = None,
    baseline_profile: dict | None = None,
    source_commit: str = "",
    ci_run_url: str = "",
    training_data_ref: str = "",
    tags: list[str] | None = None,
) -> ModelVersion:
    """Register an immutable version by reference. The server assigns the number; the digest is
    verified whenever the URI is readable from here."""
    require(actor.principal, Action.VERSION_REGISTER, model)
    validation.check_digest("artifact_digest", artifact_digest)
    validation.check_image("image", image)
    validation.check_json_schema("input_schema", input_schema, require_object=True)
    if output_schema:
        validation.check_json_schema("output_schema", output_schema)
    validation.check_examples("example_requests", example_requests or [], input_schema)
    validation.check_baseline_profile("baseline_profile", baseline_profile)
    if config is not None and not isinstance(config, dict):
        raise ValidationFailed("must be an object", field="config")
    if training_metrics is not None and not isinstance(training_metrics, dict):
        raise ValidationFailed("must be an object", field="training_metrics")
    digest_verified = validation.verify_artifact(artifact_uri, artifact_digest)
    # The row lock serialises concurrent registrations so numbers stay dense and monotonic.
    locked = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    locked.last_version_number += 1
    locked.save(update_fields=["last_version_number", "updated_at"])
    version = ModelVersion.objects.create(
        model=locked,
        number=locked.last_version_number,
        artifact_uri=artifact_uri,
        artifact_digest=artifact_digest,
        digest_verified=digest_verified,
        image=image,
        framework=framework,
        config=config or {},
        input_schema=input_schema,
        output_schema=output_schema or {},
        example_requests=example_requests or [],
        training_metrics=training_metrics or {},
        baseline_profile=baseline_profile or {},
        source_commit=source_commit,
        ci_run_url=ci_run_url,
        training_data_ref=training_data_ref,
        tags=_check_tags(tags or []),
        created_by=actor.user,
        created_by_token=actor.token,
    )
    audit.record(
        actor=actor,
        action="version.register",
        target=version,
        after=audit.snapshot(
            version,
            (
                "number",
                "artifact_uri",
                "artifact_digest",
                "digest_verified",
                "image",
                "framework",
                "source_commit",
                "ci_run_url",
                "status",
                "tags",
            ),
        ),
    )
    return version


@transaction.atomic
def version_update(
    *, actor: Actor, version: ModelVersion, status: str | None = None, tags: list[str] | None = None
) -> ModelVersion:
    """Change what may change after registration: the lifecycle status and the tags."""
    require(actor.principal, Action.VERSION_UPDATE, version)
    version = ModelVersion.objects.select_for_update().select_related("model").get(pk=version.pk)
    before = audit.snapshot(version, ("status", "tags"))
    if status is not None and status != version.status:
        if status not in VERSION_STATUS_TRANSITIONS:
            raise ValidationFailed(
                f"must be one of {', '.join(VERSION_STATUS_TRANSITIONS)}", field="status"
            )
        if status not in VERSION_STATUS_TRANSITIONS[version.status]:
            raise Conflict(f"a {version.status} version cannot become {status}", field="status")
        version.status = status
    if tags is not None:
        version.tags = _check_tags(tags)
    after = audit.snapshot(version, ("status", "tags"))
    if before != after:
        version.save(update_fields=["status", "tags"])
        audit.record(
            actor=actor, action="version.update", target=version, before=before, after=after
        )
    return version


# Aliases --------------------------------------------------------------------------------------


@transaction.atomic
def alias_set(*, actor: Actor, model: RegisteredModel, name: str, version_number: int) -> Alias:
    require(actor.principal, Action.ALIAS_SET, model)
    version = ModelVersion.objects.filter(model=model, number=version_number).first()
    if version is None:
        raise ValidationFailed(f"{model.name} has no version {version_number}", field="version")
    alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
    before = {"version": alias.version.number} if alias else None
    if alias is None:
        try:
            with transaction.atomic():
                alias = Alias.objects.create(model=model, name=name, version=version)
        except IntegrityError:
            raise Conflict("the alias was set concurrently; retry", field="name") from None
    elif alias.version_id != version.pk:
        alias.version = version
        alias.save(update_fields=["version", "updated_at"])
    else:
        return alias
    audit.record(
        actor=actor,
        action="alias.set",
        target=alias,
        before=before,
        after={"version": version.number},
    )
    return alias


@transaction.atomic
def alias_delete(*, actor: Actor, model: RegisteredModel, name: str) -> None:
    require(actor.principal, Action.ALIAS_SET, model)
    alias = (
        Alias.objects.select_for_update()
        .select_related("version")
        .filter(model=model, name=name)
        .first()
    )
    if alias is None:
        raise NotFound(f"{model.name} has no alias {name!r}", field="alias")
    audit.record(
        actor=actor, action="alias.delete", target=alias, before={"version": alias.version.number}
    )
    alias.delete()


def user_by_username(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationFailed(f"no user named {username!r}", field="username")
    return user
