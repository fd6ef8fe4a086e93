"""Every write to the registry (models, versions, aliases): one transaction, one permission
check, one audit event each.
The API, the pages and the admin all call these; none of them writes registry rows itself."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import Conflict, NotFound, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.models import Team
from identity.permissions import Action, require

from . import validation
from .models import (
    VERSION_STATUS_TRANSITIONS,
    Alias,
    ModelVersion,
    RegisteredModel,
    RiskTier,
)


def _check_tags(tags: Any, field: str = "tags") -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
        raise ValidationFailed("must be a list of strings of 1 to 64 characters", field=field)
    return sorted(set(tags))


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
    number = _next_version_number(model)
    version = ModelVersion.objects.create(
        model=model,
        number=number,
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


def _next_version_number(model: RegisteredModel) -> int:
    """Hand out the model's next version number. The UPDATE takes the row lock, which serialises
    concurrent registrations so numbers stay dense and monotonic, and RETURNING reads the number
    in the same round trip (the ORM has no UPDATE ... RETURNING; PostgreSQL and SQLite >= 3.35
    both have it). Must run inside the registration's transaction."""
    table = connection.ops.quote_name(RegisteredModel._meta.db_table)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_version_number = last_version_number + 1, "  # noqa: S608
            "updated_at = %s WHERE id = %s RETURNING last_version_number",
            [connection.ops.adapt_datetimefield_value(now), model.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"no model {model.name!r}", field="model")
    model.last_version_number = row[0]
    model.updated_at = now
    return row[0]


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
