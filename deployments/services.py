"""Every write to deployments and releases: one transaction, one permission check, audit events,
and the reconcile enqueued after commit. The API, the pages and the workers call these; the
engine (deployments/engine/) carries the work out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict, ValidationFailed
from core.jsonsafe import json_safe
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require
from registry.models import ModelVersion, RegisteredModel, RiskTier, VersionStatus

from . import engine, policy
from .models import (
    ACTIVE_STATES,
    RUNNING_STATES,
    Approval,
    ApprovalDecision,
    Deployment,
    DeploymentConfig,
    Environment,
    MetricsKind,
    Release,
    ReleaseState,
    Rollback,
    Strategy,
)
from .validation import (
    CONFIG_FIELDS,
    check_analysis_window,
    check_deployment_name,
    check_environment,
    check_resources,
    validate_config,
    validate_strategy,
)

REQUIRED_APPROVALS = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2}
# The rollback runbook of a deployment: short enough to read while pressing the button.
ROLLBACK_NOTES_MAX = 4000


# Environments ---------------------------------------------------------------------------------


@transaction.atomic
def environment_create(
    *,
    actor: Actor,
    name: str,
    runtime_kind: str,
    runtime_config: dict[str, Any] | None = None,
    metrics_kind: str = MetricsKind.NONE,
    metrics_url: str = "",
    metrics_scrape_interval_seconds: float = 15.0,
    staging: str | None = None,
    is_production: bool = False,
    vcpu_hour_price: Decimal | float = 0,
    gib_hour_price: Decimal | float = 0,
    gpu_hour_price: Decimal | float = 0,
    description: str = "",
) -> Environment:
    if actor.principal is not None:
        require(actor.principal, Action.ENVIRONMENT_MANAGE, None)
    config = runtime_config or {}
    check_environment(
        runtime_kind=runtime_kind,
        runtime_config=config,
        metrics_kind=metrics_kind,
        metrics_url=metrics_url,
        metrics_scrape_interval_seconds=metrics_scrape_interval_seconds,
        prices={
            "vcpu_hour_price": vcpu_hour_price,
            "gib_hour_price": gib_hour_price,
            "gpu_hour_price": gpu_hour_price,
        },
    )
    if Environment.objects.filter(name=name).exists():
        raise Conflict(f"an environment named {name!r} already exists", field="name")
    staging_env = None
    if staging:
        staging_env = Environment.objects.filter(name=staging).first()
        if staging_env is None:
            raise ValidationFailed(f"no environment named {staging!r}", field="staging")
    environment = Environment.objects.create(
        name=name,
        description=description,
        runtime_kind=runtime_kind,
        runtime_config=config,
        metrics_kind=metrics_kind,
        metrics_url=metrics_url,
        metrics_scrape_interval_seconds=metrics_scrape_interval_seconds,
        staging=staging_env,
        is_production=is_production,
        vcpu_hour_price=vcpu_hour_price,
        gib_hour_price=gib_hour_price,
        gpu_hour_price=gpu_hour_price,
    )
    audit.record(
        actor=actor,
        action="environment.create",
        target=environment,
        after=audit.snapshot(
            environment, ("name", "runtime_kind", "metrics_kind", "is_production", "staging")
        ),
    )
    return environment


# Deployments ----------------------------------------------------------------------------------


def _new_config(deployment: Deployment, actor: Actor, values: dict[str, Any]) -> DeploymentConfig:
    base: dict[str, Any] = {}
    if deployment.config is not None:
        base = {name: getattr(deployment.config, name) for name in CONFIG_FIELDS}
    # Checked whole: a request may now exceed the previous revision's limit, and a revision
    # saved before quantities were canonical is written canonically from here on.
    merged = check_resources({**base, **validate_config(values)}, revision=True)
    last = deployment.configs.order_by("-revision").values_list("revision", flat=True).first()
    config = DeploymentConfig.objects.create(
        deployment=deployment, revision=(last or 0) + 1, created_by_label=actor.label, **merged
    )
    deployment.config = config
    deployment.save(update_fields=["config", "updated_at"])
    return config


@transaction.atomic
def deployment_create(
    *,
    actor: Actor,
    model: RegisteredModel,
    environment: Environment,
    name: str | None = None,
    strategy: str = Strategy.CANARY,
    strategy_params: dict[str, Any] | None = None,
    **config: Any,
) -> Deployment:
    require(actor.principal, Action.DEPLOYMENT_MANAGE, model)
    name = name or model.name
    check_deployment_name(name)
    params = validate_strategy(strategy, strategy_params or {})
    check_analysis_window(environment, strategy, params)
    if Deployment.objects.filter(environment=environment, model=model).exists():
        raise Conflict(f"{model.name} is already deployed in {environment.name}", field="model")
    if Deployment.objects.filter(environment=environment, name=name).exists():
        raise Conflict(f"{environment.name} already has a deployment named {name!r}", field="name")
    deployment = Deployment.objects.create(
        name=name,
        model=model,
        environment=environment,
        strategy=strategy,
        strategy_params=params,
    )
    config_row = _new_config(deployment, actor, config)
    audit.record(
        actor=actor,
        action="deployment.create",
        target=deployment,
        after={
            "name": name,
            "environment": environment.name,
            "strategy": strategy,
            "config_revision": config_row.revision,
        },
    )
    return deployment


@transaction.atomic
def deployment_configure(
    *,
    actor: Actor,
    deployment: Deployment,
    strategy: str | None = None,
    strategy_params: dict[str, Any] | None = None,
    rollback_notes: str | None = None,
    **config: Any,
) -> Deployment:
    """A new config revision (and/or strategy, and/or the rollback runbook): versioned and
    audited with before/after."""
    require(actor.principal, Action.DEPLOYMENT_MANAGE, deployment)
    deployment = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("config", "environment")
        .get(pk=deployment.pk)
    )
    before = {
        "strategy": deployment.strategy,
        "strategy_params": deployment.strategy_params,
        "config_revision": deployment.config.revision if deployment.config else None,
        "rollback_notes": deployment.rollback_notes,
    }
    if rollback_notes is not None:
        if len(rollback_notes) > ROLLBACK_NOTES_MAX:
            raise ValidationFailed(
                f"at most {ROLLBACK_NOTES_MAX} characters", field="rollback_notes"
            )
        deployment.rollback_notes = rollback_notes
        deployment.save(update_fields=["rollback_notes", "updated_at"])
    if strategy is not None or strategy_params is not None:
        strategy = strategy or deployment.strategy
        deployment.strategy_params = validate_strategy(
            strategy, strategy_params if strategy_params is not None else deployment.strategy_params
        )
        check_analysis_window(deployment.environment, strategy, deployment.strategy_params)
        deployment.strategy = strategy
        deployment.save(update_fields=["strategy", "strategy_params", "updated_at"])
    changed_config = {}
    if config:
        old = deployment.config
        new = _new_config(deployment, actor, config)
        changed_config = {
            k: {"before": getattr(old, k) if old else None, "after": getattr(new, k)}
            for k in config
            if old is None or getattr(old, k) != getattr(new, k)
        }
    after = {
        "strategy": deployment.strategy,
        "strategy_params": deployment.strategy_params,
        "config_revision": deployment.config.revision if deployment.config else None,
        "rollback_notes": deployment.rollback_notes,
    }
    audit.record(
        actor=actor,
        action="deployment.configure",
        target=deployment,
        before=before,
        after={**after, "changes": json_safe(changed_config)},
    )
    return deployment


def staging_deployment(deployment: Deployment, actor: Actor) -> Deployment | None:
    """The deployment of the same model in the environment that gates this one (created on
    first use, with the same config and a rolling strategy)."""
    staging_env = deployment.environment.staging
    if staging_env is None:
        return None
    existing = (
        Deployment.objects.select_related("config", "stable_version")
        .filter(environment=staging_env, model=deployment.model)
        .first()
    )
    if existing is not None:
        return existing
    staging = Deployment.objects.create(
        name=deployment.name,
        model=deployment.model,
        environment=staging_env,
        strategy=Strategy.ROLLING,
    )
    values = {name: getattr(deployment.config, name) for name in CONFIG_FIELDS}
    values["replicas"] = 1
    values["min_replicas"] = values["max_replicas"] = None
    _new_config(staging, actor, values)
    audit.record(
        actor=actor,
        action="deployment.create",
        target=staging,
        after={
            "name": staging.name,
            "environment": staging_env.name,
            "reason": f"staging for {deployment}",
        },
    )
    return staging


# Releases -------------------------------------------------------------------------------------


@transaction.atomic
def release_create(*, actor: Actor, deployment: Deployment, version: ModelVersion) -> Release:
    require(actor.principal, Action.RELEASE_CREATE, deployment)
    deployment = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("environment__staging", "model", "config", "stable_version")
        .get(pk=deployment.pk)
    )
    if version.model_id != deployment.model_id:
        raise ValidationFailed(
            f"is a version of {version.model.name}, not {deployment.model.name}", field="version"
        )
    if version.status in (VersionStatus.DEPRECATED, VersionStatus.ARCHIVED):
        raise Conflict(f"v{version.number} is {version.status}", field="version")
    if deployment.stable_version_id == version.pk:
        raise Conflict(f"v{version.number} already serves {deployment}", field="version")
    if deployment.releases.filter(state__in=ACTIVE_STATES).exists():
        raise Conflict(
            "this deployment already has an active release; finish or abort it first",
            field="deployment",
        )
    if deployment.config is None:
        raise Conflict("the deployment has no configuration", field="deployment")
    staging = staging_deployment(deployment, actor)
    params = deployment.effective_strategy_params
    # Unless configured, warm up for three scrapes (and 5 s) before each analysis window, so
    # that service discovery has found the canary before its window opens.
    params.setdefault(
        "analysis_warmup_seconds",
        5 + 3 * deployment.environment.metrics_scrape_interval_seconds
        if deployment.environment.metrics_kind != MetricsKind.NONE
        else 0,
    )
    plan = engine.build_plan(
        strategy=deployment.strategy,
        params=params,
        new=version.number,
        old=deployment.stable_version.number if deployment.stable_version else None,
        staging_old=(
            staging.stable_version.number
            if staging and staging.stable_version_id and staging.stable_version_id != version.pk
            else None
        ),
        has_staging=staging is not None,
    )
    required = (
        REQUIRED_APPROVALS[deployment.model.risk_tier]
        if deployment.environment.is_production
        else 0
    )
    try:
        with transaction.atomic():
            release = Release.objects.create(
                deployment=deployment,
                version=version,
                from_version=deployment.stable_version,
                config=deployment.config,
                strategy=deployment.strategy,
                plan=engine.plan_to_json(plan),
                required_approvals=required,
                author=actor.user,
                author_label=actor.label,
                state=ReleaseState.AWAITING_APPROVAL,
            )
    except IntegrityError:
        raise Conflict(
            "this deployment already has an active release", field="deployment"
        ) from None
    audit.record(
        actor=actor,
        action="release.create",
        target=release,
        after={
            "version": version.number,
            "strategy": release.strategy,
            "required_approvals": required,
            "steps": len(plan),
        },
    )
    engine.record_step(
        release,
        "create",
        outcome="ok",
        actor=actor,
        evidence={"plan": engine.plan_to_json(plan), "required_approvals": required},
    )
    if required == 0:
        engine.transition(
            release,
            ReleaseState.APPROVED,
            actor=actor,
            kind="approve",
            reason="no approval required for this risk tier and environment",
        )
        release.next_reconcile_at = clock.now()
        release.save(update_fields=["next_reconcile_at"])
        engine.schedule_reconcile(release.pk)
    return release


def _locked(release: Release) -> Release:
    return (
        Release.objects.select_for_update(of=("self",))
        .select_related(
            "deployment__model__team",
            "deployment__environment",
            "version",
            "from_version",
            "config",
        )
        .get(pk=release.pk)
    )


@transaction.atomic
def release_decide(*, actor: Actor, release: Release, decision: str, comment: str = "") -> Release:
    """Approve or reject. Never the release's author, never a CI token (both rules live in
    permissions.refusal); a high-risk model needs two distinct approvers. A rejection says why
    (the author reads it to fix the version); an approval's comment is optional."""
    require(actor.principal, Action.RELEASE_APPROVE, release)
    release = _locked(release)
    if decision not in ApprovalDecision.values:
        raise ValidationFailed("must be approve or reject", field="decision")
    comment = comment.strip()
    if decision == ApprovalDecision.REJECT and not comment:
        raise ValidationFailed("is required to reject a release", field="comment")
    if release.state != ReleaseState.AWAITING_APPROVAL:
        existing = Approval.objects.filter(
            release=release, user=actor.user, decision=decision
        ).exists()
        if existing:
            return release  # a repeated click: idempotent
        raise Conflict(f"the release is {release.state}, not awaiting approval", field="state")
    approval, created = Approval.objects.get_or_create(
        release=release, user=actor.user, defaults={"decision": decision, "comment": comment}
    )
    if not created:
        if approval.decision == decision:
            return release
        raise Conflict(f"you already decided: {approval.decision}", field="decision")
    audit.record(
        actor=actor,
        action=f"release.{decision}",
        target=release,
        reason=comment,
        after={"decision": decision},
    )
    if decision == ApprovalDecision.REJECT:
        engine.transition(
            release,
            ReleaseState.REJECTED,
            actor=actor,
            kind="reject",
            reason=comment,
            outcome="rejected",
        )
        return release
    approvals = release.approvals.filter(decision=ApprovalDecision.APPROVE).count()
    engine.record_step(
        release,
        "approval",
        outcome="ok",
        actor=actor,
        reason=comment,
        evidence={"approvals": approvals, "required": release.required_approvals},
    )
    if approvals >= release.required_approvals:
        engine.transition(
            release,
            ReleaseState.APPROVED,
            actor=actor,
            kind="approve",
            reason=f"{approvals} of {release.required_approvals} approvals",
        )
        release.next_reconcile_at = clock.now()
        release.save(update_fields=["next_reconcile_at"])
        engine.schedule_reconcile(release.pk)
    return release


@transaction.atomic
def release_pause(*, actor: Actor, release: Release, reason: str = "") -> Release:
    require(actor.principal, Action.RELEASE_OPERATE, release)
    release = _locked(release)
    if release.state == ReleaseState.PAUSED:
        return release
    if "pause" not in policy.allowed_actions(release):
        raise Conflict(f"a release that is {release.state} cannot be paused", field="state")
    release.paused_from = release.state
    engine.transition(
        release, ReleaseState.PAUSED, actor=actor, kind="pause", reason=reason or "paused by hand"
    )
    return release


@transaction.atomic
def release_resume(*, actor: Actor, release: Release, reason: str = "") -> Release:
    require(actor.principal, Action.RELEASE_OPERATE, release)
    release = _locked(release)
    if release.state != ReleaseState.PAUSED:
        if release.state in RUNNING_STATES:
            return release  # already running: idempotent
        raise Conflict(f"a release that is {release.state} cannot be resumed", field="state")
    target = release.paused_from or ReleaseState.PROGRESSING
    engine.transition(
        release, target, actor=actor, kind="resume", reason=reason or "resumed by hand"
    )
    # The analysis window starts again from now: data from before the pause is not evidence.
    release.step_started_at = clock.now()
    release.next_reconcile_at = clock.now()
    release.save(update_fields=["step_started_at", "next_reconcile_at"])
    engine.schedule_reconcile(release.pk)
    return release


@transaction.atomic
def release_promote(*, actor: Actor, release: Release, reason: str = "") -> Release:
    """Skip the current wait-and-analyse step and go to the next one."""
    require(actor.principal, Action.RELEASE_OPERATE, release)
    release = _locked(release)
    step = engine.current_step(release)
    paused_in_production = release.state == ReleaseState.PAUSED
    if "promote" not in policy.allowed_actions(release) or not isinstance(step, engine.AnalyzeStep):
        current = step.action if step else "none"
        raise Conflict(
            f"a release that is {release.state} at step {current} cannot be promoted: only "
            "an analysis step of a production rollout can be skipped",
            field="state",
        )
    engine.record_step(
        release,
        "analysis",
        outcome="skipped",
        actor=actor,
        reason=reason or "promoted by hand",
        evidence={"skipped_step": release.step_index, "weight": step.weight},
    )
    release.step_index += 1
    release.step_started_at = clock.now()
    release.next_reconcile_at = clock.now()
    release.save(update_fields=["step_index", "step_started_at", "next_reconcile_at"])
    if paused_in_production:
        engine.transition(
            release, ReleaseState.PROGRESSING, actor=actor, kind="resume", reason="promoted by hand"
        )
    audit.record(
        actor=actor,
        action="release.promote",
        target=release,
        reason=reason,
        after={"step_index": release.step_index},
    )
    engine.schedule_reconcile(release.pk)
    return release


@transaction.atomic
def release_abort(*, actor: Actor, release: Release, reason: str = "") -> Release:
    """Stop the release for good; in production, traffic goes back to the stable version first.
    An aborted release stays aborted: nothing retries it."""
    require(actor.principal, Action.RELEASE_OPERATE, release)
    release = _locked(release)
    reason = reason or "aborted by hand"
    if release.state == ReleaseState.ABORTED or policy.is_aborting(release):
        return release
    if release.is_terminal:
        raise Conflict(f"the release is already {release.state}", field="state")
    if release.state == ReleaseState.ROLLING_BACK:
        # Already going back: the rollback finishes, and then the release ends aborted.
        release.aborting = True
        release.save(update_fields=["aborting"])
        engine.record_step(release, "abort", outcome="ok", actor=actor, reason=reason)
        return release
    if policy.in_production(release):
        engine.start_rollback(release, actor=actor, reason=reason, aborting=True)
        return release
    engine.restore_staging(release)
    engine.transition(release, ReleaseState.ABORTED, actor=actor, kind="abort", reason=reason)
    return release


@transaction.atomic
def deployment_rollback(*, actor: Actor, deployment: Deployment, reason: str = "") -> Rollback:
    """The one button: all traffic back to the last version that was promoted and healthy.
    Needs no metrics. Any active release of the deployment is turned around or aborted."""
    require(actor.principal, Action.DEPLOYMENT_ROLLBACK, deployment)
    deployment = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("stable_version", "previous_stable_version", "environment", "model")
        .get(pk=deployment.pk)
    )
    reason = reason or "rolled back by hand"
    decision = policy.rollback_target(deployment)
    active = decision.active_release
    if decision.pending_rollback_id is not None:
        return Rollback.objects.get(pk=decision.pending_rollback_id)  # already going back
    if active is not None:
        active = Release.objects.select_for_update(of=("self",)).get(pk=active.pk)
        if decision.turn_around:
            rollback = engine.start_rollback(active, actor=actor, reason=reason)
            if rollback is not None:
                audit.record(
                    actor=actor,
                    action="deployment.rollback",
                    target=deployment,
                    reason=reason,
                    after={"to_version": rollback.to_version.number, "release": active.pk},
                )
                return rollback
        else:
            engine.transition(
                active,
                ReleaseState.ABORTED,
                actor=actor,
                kind="abort",
                reason=f"aborted by a rollback of the deployment: {reason}",
            )
    target = decision.version
    if target is None:
        raise Conflict("there is no earlier promoted version to roll back to", field="deployment")
    existing = deployment.rollbacks.filter(state="pending", to_version=target).first()
    if existing is not None:
        return existing
    rollback = Rollback.objects.create(
        deployment=deployment,
        from_version=deployment.stable_version,
        to_version=target,
        actor_label=actor.label,
        reason=reason,
    )
    audit.record(
        actor=actor,
        action="deployment.rollback",
        target=deployment,
        reason=reason,
        before={
            "stable_version": deployment.stable_version.number
            if deployment.stable_version
            else None
        },
        after={"to_version": target.number},
    )
    engine.schedule_rollback(rollback.pk)
    return rollback
