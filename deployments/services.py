"""Every write to deployments and releases: one transaction, one permission check, audit events,
and the reconcile enqueued after commit. The API, the pages and the workers call these; the
engine (engine.py) carries the work out."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict, Forbidden, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require
from identity.principals import is_token
from registry.models import ModelVersion, RegisteredModel, RiskTier, VersionStatus

from . import engine, policy
from .kpi import KPI_KEY, parse_kpi
from .models import (
    ACTIVE_STATES,
    DEFAULT_STRATEGY_PARAMS,
    Approval,
    ApprovalDecision,
    Deployment,
    DeploymentConfig,
    Environment,
    MetricsKind,
    Release,
    ReleaseState,
    Rollback,
    RuntimeKind,
    Strategy,
)

REQUIRED_APPROVALS = {RiskTier.LOW: 0, RiskTier.MEDIUM: 1, RiskTier.HIGH: 2}
QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$")
# Public env vars that look like credentials must be secret references instead.
SECRET_LOOKING_RE = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)
SECRET_CONFIG_KEYS = {"token", "password", "client_key", "client_certificate", "bearer_token"}

CONFIG_FIELDS = (
    "replicas",
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    "gpu",
    "min_replicas",
    "max_replicas",
    "env",
    "secret_refs",
    "slo_latency_p95_ms",
    "slo_error_rate",
    "slo_availability",
    "drift_warn",
    "drift_alert",
    "monthly_budget",
    "metrics_queries",
)


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
    if runtime_kind not in RuntimeKind.values:
        raise ValidationFailed(f"must be one of {RuntimeKind.values}", field="runtime_kind")
    if metrics_kind not in MetricsKind.values:
        raise ValidationFailed(f"must be one of {MetricsKind.values}", field="metrics_kind")
    if metrics_kind == MetricsKind.PROMETHEUS and not metrics_url:
        raise ValidationFailed("is required for a Prometheus metrics source", field="metrics_url")
    if not 0.5 <= float(metrics_scrape_interval_seconds) <= 600:
        raise ValidationFailed(
            "must be from 0.5 to 600 seconds", field="metrics_scrape_interval_seconds"
        )
    config = runtime_config or {}
    leaked = SECRET_CONFIG_KEYS & {k.lower() for k in config}
    if leaked:
        raise ValidationFailed(
            "holds credentials; reference a kubeconfig path or in-cluster auth instead",
            field=f"runtime_config.{sorted(leaked)[0]}",
        )
    if Environment.objects.filter(name=name).exists():
        raise Conflict(f"an environment named {name!r} already exists", field="name")
    staging_env = None
    if staging:
        staging_env = Environment.objects.filter(name=staging).first()
        if staging_env is None:
            raise ValidationFailed(f"no environment named {staging!r}", field="staging")
    for field_name, price in (
        ("vcpu_hour_price", vcpu_hour_price),
        ("gib_hour_price", gib_hour_price),
        ("gpu_hour_price", gpu_hour_price),
    ):
        if Decimal(str(price)) < 0:
            raise ValidationFailed("must not be negative", field=field_name)
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


def validate_strategy(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    if strategy not in Strategy.values:
        raise ValidationFailed(f"must be one of {Strategy.values}", field="strategy")
    if not isinstance(params, dict):
        raise ValidationFailed("must be an object", field="strategy_params")
    allowed = {
        "steps",
        "analysis_interval_seconds",
        "min_requests",
        "keep_warm_seconds",
        "mirror_percent",
        "progress_deadline_seconds",
        "max_cost_increase",
        "analysis_warmup_seconds",
    }
    unknown = set(params) - allowed
    if unknown:
        raise ValidationFailed(
            "is not a strategy parameter", field=f"strategy_params.{sorted(unknown)[0]}"
        )
    if "steps" in params:
        steps = params["steps"]
        if (
            not isinstance(steps, list)
            or not steps
            or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 100 for s in steps
            )
            or steps != sorted(set(steps))
            or steps[-1] != 100
        ):
            raise ValidationFailed(
                "must be increasing percentages ending at 100, e.g. [5, 25, 50, 100]",
                field="strategy_params.steps",
            )
    for key, low, high in (
        ("analysis_interval_seconds", 0, 86400),
        ("min_requests", 0, 10**9),
        ("keep_warm_seconds", 0, 7 * 86400),
        ("mirror_percent", 1, 100),
        ("progress_deadline_seconds", 10, 86400),
        ("max_cost_increase", 0, 100),
        ("analysis_warmup_seconds", 0, 3600),  # relative: 0.2 = canary may cost 20% more
    ):
        if key in params:
            value = params[key]
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not (low <= value <= high)
            ):
                raise ValidationFailed(
                    f"must be a number from {low} to {high}", field=f"strategy_params.{key}"
                )
    return params


# The rank tests need 20 samples per side; the sources aim at 25 intervals (so a few missed
# scrapes do not starve them), each spanning at least two scrape intervals.
ANALYSIS_INTERVALS = 25


def check_analysis_window(environment: Environment, strategy: str, params: dict[str, Any]) -> None:
    """An analysis window too short for the environment's scrape interval can never reach a
    verdict (every step would pause as inconclusive): refuse it when it is configured."""
    if environment.metrics_kind == MetricsKind.NONE:
        return
    effective = {**DEFAULT_STRATEGY_PARAMS[strategy], **params}
    interval = float(effective.get("analysis_interval_seconds", 0) or 0)
    if strategy not in (Strategy.CANARY, Strategy.SHADOW) or interval == 0:
        return
    scrape = environment.metrics_scrape_interval_seconds
    needed = ANALYSIS_INTERVALS * 2 * scrape
    if interval < needed:
        raise ValidationFailed(
            f"must be at least {needed:g} s in {environment.name}: the comparison takes "
            f"{ANALYSIS_INTERVALS} samples per side of two {scrape:g} s scrape intervals each",
            field="strategy_params.analysis_interval_seconds",
        )


def validate_config(values: dict[str, Any]) -> dict[str, Any]:
    """Checks of a deployment config revision; every error names its field."""
    unknown = set(values) - set(CONFIG_FIELDS)
    if unknown:
        raise ValidationFailed("is not a configuration field", field=sorted(unknown)[0])
    for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
        if key in values and not (isinstance(values[key], str) and QUANTITY_RE.match(values[key])):
            raise ValidationFailed(
                'must be a Kubernetes quantity such as "500m" or "1Gi"', field=key
            )
    if "replicas" in values and not 1 <= int(values["replicas"]) <= 100:
        raise ValidationFailed("must be from 1 to 100", field="replicas")
    lo, hi = values.get("min_replicas"), values.get("max_replicas")
    if (lo is None) != (hi is None) or (lo is not None and not 1 <= lo <= hi):
        raise ValidationFailed(
            "min_replicas and max_replicas go together, 1 <= min <= max",
            field="max_replicas" if lo is not None else "min_replicas",
        )
    env = values.get("env", {})
    if not isinstance(env, dict):
        raise ValidationFailed("must be an object of NAME: value", field="env")
    for name, value in env.items():
        if not ENV_NAME_RE.match(str(name)):
            raise ValidationFailed("is not a valid environment variable name", field=f"env.{name}")
        if not isinstance(value, str | int | float | bool):
            raise ValidationFailed("must be a plain value", field=f"env.{name}")
        if SECRET_LOOKING_RE.search(str(name)):
            raise ValidationFailed(
                "looks like a credential: use a secret reference (secret_refs), never a value",
                field=f"env.{name}",
            )
    refs = values.get("secret_refs", [])
    if not isinstance(refs, list):
        raise ValidationFailed("must be a list", field="secret_refs")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or set(ref) != {"env_name", "secret_name", "secret_key"}:
            raise ValidationFailed(
                "must be {env_name, secret_name, secret_key} and nothing else (never a value)",
                field=f"secret_refs[{i}]",
            )
        if not ENV_NAME_RE.match(str(ref["env_name"])):
            raise ValidationFailed(
                "is not a valid environment variable name", field=f"secret_refs[{i}].env_name"
            )
        if not DNS_LABEL_RE.match(str(ref["secret_name"])):
            raise ValidationFailed(
                "must be a Kubernetes Secret name", field=f"secret_refs[{i}].secret_name"
            )
    for key, low, high in (
        ("slo_error_rate", 0, 1),
        ("slo_availability", 0.5, 1),
        ("drift_warn", 0, 10),
        ("drift_alert", 0, 10),
    ):
        if key in values and not low <= float(values[key]) <= high:
            raise ValidationFailed(f"must be from {low} to {high}", field=key)
    if float(values.get("drift_warn", 0.1)) > float(values.get("drift_alert", 0.25)):
        raise ValidationFailed("must not exceed drift_alert", field="drift_warn")
    queries = values.get("metrics_queries", {})
    if not isinstance(queries, dict):
        raise ValidationFailed(
            "must be an object of template name: PromQL", field="metrics_queries"
        )
    for name, value in queries.items():
        if name == KPI_KEY:
            parse_kpi(value)  # the business KPI: {name, unit, good_direction, query}
        elif not isinstance(value, str):
            raise ValidationFailed("must be a PromQL template", field=f"metrics_queries.{name}")
    return values


def _new_config(deployment: Deployment, actor: Actor, values: dict[str, Any]) -> DeploymentConfig:
    base: dict[str, Any] = {}
    if deployment.config is not None:
        base = {name: getattr(deployment.config, name) for name in CONFIG_FIELDS}
    merged = {**base, **validate_config(values)}
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
    if not DNS_LABEL_RE.match(name):
        raise ValidationFailed(
            "must be a DNS label (lowercase, digits, '-', at most 50)", field="name"
        )
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
    **config: Any,
) -> Deployment:
    """A new config revision (and/or strategy): versioned and audited with before/after."""
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
    }
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
    }
    audit.record(
        actor=actor,
        action="deployment.configure",
        target=deployment,
        before=before,
        after={**after, "changes": _jsonable(changed_config)},
    )
    return deployment


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


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
                plan=plan,
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
        evidence={"plan": plan, "required_approvals": required},
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
    """Approve or reject. Never the release's author, never a CI token; a high-risk model needs
    two distinct approvers."""
    if is_token(actor.principal):
        raise Forbidden("CI tokens cannot approve or reject releases; a person decides.")
    require(actor.principal, Action.RELEASE_APPROVE, release)
    release = _locked(release)
    if decision not in ApprovalDecision.values:
        raise ValidationFailed("must be approve or reject", field="decision")
    if (
        release.author_id is not None
        and actor.user is not None
        and release.author_id == actor.user.pk
    ):
        raise Forbidden("the author of a release cannot approve or reject it")
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
            reason=comment or "rejected",
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
        if release.state in (
            ReleaseState.STAGING,
            ReleaseState.REHEARSAL,
            ReleaseState.PROGRESSING,
            ReleaseState.APPROVED,
        ):
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
    step = release.current_step
    paused_in_production = release.state == ReleaseState.PAUSED
    if "promote" not in policy.allowed_actions(release):
        current = step["action"] if step else "none"
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
        evidence={"skipped_step": release.step_index, "weight": step.get("weight")},
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
    if release.state == ReleaseState.ABORTED or (
        release.state == ReleaseState.ROLLING_BACK and release.status_reason == "aborting"
    ):
        return release
    if release.is_terminal:
        raise Conflict(f"the release is already {release.state}", field="state")
    in_production = release.state == ReleaseState.PROGRESSING or (
        release.state in (ReleaseState.PAUSED, ReleaseState.ROLLING_BACK)
        and (
            release.paused_from == ReleaseState.PROGRESSING
            or release.state == ReleaseState.ROLLING_BACK
        )
    )
    if release.state == ReleaseState.ROLLING_BACK:
        rollback = release.rollbacks.order_by("-id").first()
        if rollback is not None:
            rollback.evidence = {**rollback.evidence, "aborting": True}
            rollback.save(update_fields=["evidence"])
        release.status_reason = "aborting"
        release.save(update_fields=["status_reason"])
        engine.record_step(release, "abort", outcome="ok", actor=actor, reason=reason)
        return release
    if in_production:
        engine.start_rollback(release, actor=actor, reason=reason, aborting=True)
        return release
    step = release.current_step
    if step is not None and step["target"] == "staging":
        engine._restore_staging(release, step)
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
