"""The release engine: a level-triggered, idempotent reconcile loop (see ARCHITECTURE.md).

`reconcile(release_id)` reads the release, observes the runtime and takes at most the next step
of the release's frozen plan; `rollback_reconcile(rollback_id)` does the same for a rollback.
Every runtime call is idempotent (apply by name), and the plan position only moves after its
side effect succeeded, so a crash at any line, a duplicated task or a second worker never
double-applies or loses a step. One actor per release: the row is locked for the whole step.
This module never decides who may act (services.py does) and never talks HTTP to users."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import jsonschema
from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, connection, transaction

from core import clock
from core.errors import Conflict
from identity import audit
from identity.audit import Actor
from identity.models import Role
from registry.models import ModelVersion

from .analysis import AnalysisRequest, Verdict, analyzer
from .models import (
    RELEASE_TRANSITIONS,
    TERMINAL_STATES,
    WAITING_FOR_A_PERSON,
    Deployment,
    DeploymentConfig,
    Release,
    ReleaseState,
    ReleaseStep,
    Rollback,
    RollbackState,
    Strategy,
)
from .runtime.base import (
    Autoscaling,
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
    Readiness,
    Resources,
    Runtime,
    SecretRef,
    Track,
    TrafficSplit,
    VersionSpec,
    VersionStatus,
)
from .runtime.factory import runtime_for

log = logging.getLogger(__name__)

ENGINE = Actor.system("release-engine")
POLL_SECONDS = 2.0  # how soon to look again while waiting on the runtime
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
SMOKE_TIMEOUT_SECONDS = 10.0
ROUTE_PROPAGATION_SECONDS = 30.0  # how long a routed smoke test waits for a traffic switch

PHASE_STATE = {
    "staging": ReleaseState.STAGING,
    "rehearsal": ReleaseState.REHEARSAL,
    "production": ReleaseState.PROGRESSING,
}


# Runtime plumbing -------------------------------------------------------------------------------


def deployment_ref(deployment: Deployment) -> DeploymentRef:
    return DeploymentRef(
        name=deployment.name,
        model=deployment.model.name,
        environment=deployment.environment.name,
        namespace=deployment.environment.namespace,
    )


def runtime_of(deployment: Deployment) -> Runtime:
    env = deployment.environment
    return runtime_for(env.runtime_kind, env.runtime_config)


def version_spec(
    deployment: Deployment, config: DeploymentConfig, version: ModelVersion, release_id: int | None
) -> VersionSpec:
    autoscaling = None
    if config.min_replicas and config.max_replicas:
        autoscaling = Autoscaling(
            min_replicas=config.min_replicas, max_replicas=config.max_replicas
        )
    return VersionSpec(
        version=version.number,
        artifact_uri=version.artifact_uri,
        artifact_digest=version.artifact_digest,
        image=version.image,
        replicas=config.replicas,
        resources=Resources(
            cpu_request=config.cpu_request,
            cpu_limit=config.cpu_limit,
            memory_request=config.memory_request,
            memory_limit=config.memory_limit,
            gpu=config.gpu,
        ),
        autoscaling=autoscaling,
        env={str(k): str(v) for k, v in (config.env or {}).items()},
        secret_refs=tuple(
            SecretRef(r["env_name"], r["secret_name"], r["secret_key"])
            for r in (config.secret_refs or [])
        ),
        release_id=release_id,
    )


def can_serve(status: VersionStatus) -> bool:
    """Ready AND running: a version scaled to zero reports ready with nothing available, and
    traffic must never go to it."""
    return status.readiness is Readiness.READY and status.available_replicas > 0


# Plans ----------------------------------------------------------------------------------------


def build_plan(
    *,
    strategy: str,
    params: dict[str, Any],
    new: int,
    old: int | None,
    staging_old: int | None,
    has_staging: bool,
) -> list[dict[str, Any]]:
    """The frozen list of steps of a release. Each step names its phase, the deployment it acts
    on (staging or target) and explicit version numbers, so that replaying it is exact."""
    deadline = int(params.get("progress_deadline_seconds", DEFAULT_PROGRESS_DEADLINE_SECONDS))
    plan: list[dict[str, Any]] = []

    def step(phase: str, action: str, target: str = "target", **kw: Any) -> None:
        plan.append({"phase": phase, "action": action, "target": target, **kw})

    if has_staging:
        step("staging", "deploy", "staging", version=new, track=Track.STABLE)
        step("staging", "await_ready", "staging", version=new, deadline_seconds=deadline)
        step("staging", "traffic", "staging", weights={str(new): 100})
        step("staging", "smoke", "staging", version=new)
        step("staging", "promote", "staging", version=new, previous=staging_old)
        if staging_old is not None:
            # Rollback rehearsal: go back, prove the old version serves, then forward again.
            step("rehearsal", "traffic", "staging", weights={str(staging_old): 100})
            step("rehearsal", "smoke", "staging", version=staging_old, routed=True)
            step("rehearsal", "traffic", "staging", weights={str(new): 100})
            step("rehearsal", "smoke", "staging", version=new, routed=True)
        else:
            step(
                "rehearsal",
                "note",
                "staging",
                note="no earlier version in staging: nothing to rehearse a rollback to",
            )

    interval = float(params.get("analysis_interval_seconds", 0))
    warmup = float(params.get("analysis_warmup_seconds", 0))
    min_requests = int(params.get("min_requests", 0))
    if old is None:
        # First release of this deployment: nothing to compare with or fall back to.
        step("production", "deploy", version=new, track=Track.STABLE)
        step("production", "await_ready", version=new, deadline_seconds=deadline)
        step("production", "smoke", version=new)
        step("production", "traffic", weights={str(new): 100})
        step("production", "promote", version=new, previous=None)
        return plan

    if strategy == Strategy.CANARY:
        step("production", "deploy", version=new, track=Track.CANARY)
        step("production", "await_ready", version=new, deadline_seconds=deadline)
        step("production", "smoke", version=new)
        for weight in params.get("steps", [5, 25, 50, 100]):
            weight = int(weight)
            weights = (
                {str(old): 100 - weight, str(new): weight} if weight < 100 else {str(new): 100}
            )
            step("production", "traffic", weights=weights)
            if weight < 100 and interval > 0:
                step(
                    "production",
                    "analyze",
                    stable=old,
                    canary=new,
                    weight=weight,
                    interval_seconds=interval,
                    warmup_seconds=warmup,
                    min_requests=min_requests,
                    max_cost_increase=params.get("max_cost_increase"),
                )
    elif strategy == Strategy.BLUE_GREEN:
        step("production", "deploy", version=new, track=Track.PREVIEW)
        step("production", "await_ready", version=new, deadline_seconds=deadline)
        step("production", "smoke", version=new)
        step("production", "traffic", weights={str(new): 100})
    elif strategy == Strategy.SHADOW:
        percent = int(params.get("mirror_percent", 50))
        step("production", "deploy", version=new, track=Track.SHADOW)
        step("production", "await_ready", version=new, deadline_seconds=deadline)
        step("production", "smoke", version=new)
        step(
            "production",
            "traffic",
            weights={str(old): 100},
            mirror={"version": new, "percent": percent},
        )
        step(
            "production",
            "analyze",
            stable=old,
            canary=new,
            weight=0,
            shadow=True,
            interval_seconds=max(interval, 1.0),
            warmup_seconds=warmup,
            min_requests=min_requests,
            max_cost_increase=params.get("max_cost_increase"),
        )
        step("production", "traffic", weights={str(new): 100})
    else:  # rolling: low-risk models, no analysis
        step("production", "deploy", version=new, track=Track.STABLE)
        step("production", "await_ready", version=new, deadline_seconds=deadline)
        step("production", "smoke", version=new)
        step("production", "traffic", weights={str(new): 100})
    step("production", "promote", version=new, previous=old)
    return plan


# Transitions ----------------------------------------------------------------------------------


def transition(
    release: Release,
    to_state: str,
    *,
    actor: Actor,
    kind: str,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
    outcome: str = "",
) -> ReleaseStep:
    """Move a release to another state, if the table allows it; record the step and audit."""
    from_state = release.state
    if to_state not in RELEASE_TRANSITIONS[from_state]:
        raise Conflict(f"a release that is {from_state} cannot become {to_state}", field="state")
    release.state = to_state
    release.status_reason = reason
    if to_state in TERMINAL_STATES:
        release.finished_at = clock.now()
        release.next_reconcile_at = None
    release.save()
    step = ReleaseStep.objects.create(
        release=release,
        kind=kind,
        plan_index=release.step_index,
        from_state=from_state,
        to_state=to_state,
        outcome=outcome,
        actor_label=actor.label,
        reason=reason,
        evidence=evidence or {},
    )
    audit.record(
        actor=actor,
        action=f"release.{kind}",
        target=release,
        before={"state": from_state},
        after={"state": to_state},
        reason=reason,
    )
    return step


def record_step(
    release: Release,
    kind: str,
    *,
    outcome: str,
    actor: Actor = ENGINE,
    reason: str = "",
    evidence: dict[str, Any] | None = None,
) -> ReleaseStep:
    return ReleaseStep.objects.create(
        release=release,
        kind=kind,
        plan_index=release.step_index,
        from_state=release.state,
        to_state=release.state,
        outcome=outcome,
        actor_label=actor.label,
        reason=reason,
        evidence=evidence or {},
    )


# Step outcomes --------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # done | wait | fail | pause | rollback
    delay: float = 0.0
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def done(**evidence: Any) -> Outcome:
    return Outcome("done", evidence=evidence)


def wait(seconds: float = POLL_SECONDS, **evidence: Any) -> Outcome:
    return Outcome("wait", delay=seconds, evidence=evidence)


def fail(reason: str, **evidence: Any) -> Outcome:
    return Outcome("fail", reason=reason, evidence=evidence)


@dataclass
class StepContext:
    release: Release
    step: dict[str, Any]
    deployment: Deployment  # the deployment this step acts on (staging or target)
    runtime: Runtime
    ref: DeploymentRef

    def version(self, number: int) -> ModelVersion:
        return ModelVersion.objects.get(model_id=self.release.version.model_id, number=number)

    def elapsed(self) -> float:
        started = self.release.step_started_at or clock.now()
        return (clock.now() - started).total_seconds()


def _step_deploy(ctx: StepContext) -> Outcome:
    version = ctx.version(ctx.step["version"])
    config = ctx.deployment.config if ctx.step["target"] == "staging" else ctx.release.config
    spec = version_spec(ctx.deployment, config, version, ctx.release.pk)
    ctx.runtime.apply_version(ctx.ref, spec, Track(ctx.step["track"]))
    return done(applied=spec.version, replicas=spec.replicas, track=ctx.step["track"])


def _step_await_ready(ctx: StepContext) -> Outcome:
    number = ctx.step["version"]
    status = ctx.runtime.version_status(ctx.ref, number)
    evidence = {
        "version": number,
        "readiness": str(status.readiness),
        "available": status.available_replicas,
        "desired": status.desired_replicas,
        "message": status.message,
    }
    if can_serve(status):
        return done(**evidence)
    if status.readiness is Readiness.FAILED:
        return fail(f"v{number} failed to become ready: {status.message}", **evidence)
    deadline = float(ctx.step.get("deadline_seconds", DEFAULT_PROGRESS_DEADLINE_SECONDS))
    if ctx.elapsed() > deadline:
        return fail(
            f"v{number} was not ready within its progress deadline of {deadline:.0f}s", **evidence
        )
    if status.readiness is Readiness.ABSENT:
        # Level-triggered: the workload vanished (or was never applied): apply it again.
        deploy = dict(ctx.step, action="deploy", track=Track.STABLE)
        _step_deploy(StepContext(ctx.release, deploy, ctx.deployment, ctx.runtime, ctx.ref))
    return wait(**evidence)


def _step_traffic(ctx: StepContext) -> Outcome:
    weights = {int(v): int(w) for v, w in ctx.step["weights"].items()}
    mirror = ctx.step.get("mirror")
    receivers = [v for v, w in weights.items() if w > 0] + ([mirror["version"]] if mirror else [])
    # Traffic only to a version observed Ready, never before (KServe #5983).
    for number in receivers:
        status = ctx.runtime.version_status(ctx.ref, number)
        if status.readiness is Readiness.FAILED:
            return fail(f"v{number} is failing: {status.message}", version=number)
        if not can_serve(status):
            if ctx.elapsed() > DEFAULT_PROGRESS_DEADLINE_SECONDS:
                return fail(f"v{number} did not become ready to receive traffic")
            if status.readiness is Readiness.ABSENT or status.desired_replicas == 0:
                # Scaled down (after a promotion, a rollback) or gone: bring it back first.
                version = ctx.version(number)
                config = ctx.deployment.config or ctx.release.config
                ctx.runtime.apply_version(
                    ctx.ref,
                    version_spec(ctx.deployment, config, version, ctx.release.pk),
                    Track.STABLE,
                )
            return wait(waiting_for=number, readiness=str(status.readiness))
    split = TrafficSplit(
        weights=weights,
        mirror=Mirror(version=mirror["version"], percent=mirror["percent"]) if mirror else None,
    )
    ctx.runtime.set_traffic(ctx.ref, split)
    if not ctx.runtime.traffic_applied(ctx.ref, split):
        # Written, not yet served: the next look re-applies (idempotent) and checks again. The
        # step (and whatever follows it, analysis windows, scale-downs) waits for the data plane.
        if ctx.elapsed() > DEFAULT_PROGRESS_DEADLINE_SECONDS:
            return fail(
                "the traffic change never reached the data plane", weights=ctx.step["weights"]
            )
        return wait(1.0, waiting_for="route", weights=ctx.step["weights"])
    if ctx.step["target"] == "target":
        ctx.release.traffic = {"weights": ctx.step["weights"], "mirror": mirror}
    return done(weights=ctx.step["weights"], mirror=mirror)


def smoke_test(base_url: str | None, version: ModelVersion) -> tuple[bool, dict[str, Any]]:
    """Send the version's example requests; every answer must be 2xx and valid against the
    version's output schema. Returns (passed, evidence) — evidence has no payloads."""
    if not base_url:
        return False, {"error": "the control plane cannot reach this version"}
    examples = version.example_requests or []
    if not examples:
        return True, {"skipped": "the version has no example requests", "url": base_url}
    validator = jsonschema.Draft202012Validator(version.output_schema or {})
    results = []
    with httpx.Client(timeout=SMOKE_TIMEOUT_SECONDS) as client:
        for index, example in enumerate(examples):
            try:
                response = client.post(f"{base_url.rstrip('/')}/predict", json=example)
            except httpx.HTTPError as exc:
                results.append({"example": index, "error": type(exc).__name__})
                continue
            entry: dict[str, Any] = {
                "example": index,
                "status": response.status_code,
                "served_by": response.headers.get("X-Served-By-Version"),
            }
            if response.is_success:
                predictions = response.json().get("predictions", [])
                errors = [e.message for p in predictions for e in validator.iter_errors(p)]
                if errors:
                    entry["schema_errors"] = errors[:3]
                if len(predictions) != len(example.get("instances", [])):
                    entry["schema_errors"] = ["prediction count differs from instance count"]
            results.append(entry)
    passed = all(200 <= r.get("status", 0) < 300 and "schema_errors" not in r for r in results)
    return passed, {"url": base_url, "results": results}


def _step_smoke(ctx: StepContext) -> Outcome:
    number = ctx.step["version"]
    version = ctx.version(number)
    if ctx.step.get("routed"):
        # Through the entry point: proves the traffic switch took, not only that v serves.
        url = ctx.runtime.endpoint(ctx.ref) or ctx.runtime.endpoint(ctx.ref, number)
    else:
        url = ctx.runtime.endpoint(ctx.ref, number)
    passed, evidence = smoke_test(url, version)
    if ctx.step.get("routed") and passed:
        served = {r.get("served_by") for r in evidence.get("results", [])} - {None}
        if served and served != {str(number)}:
            # A route change reaches the data plane a moment later (a Gateway reconciling an
            # HTTPRoute, the local router's next push): look again before calling it failed.
            if ctx.elapsed() < ROUTE_PROPAGATION_SECONDS:
                return wait(1.0, waiting_for_route=number, served_by=sorted(served))
            return fail(f"traffic did not reach v{number} (served by {sorted(served)})", **evidence)
    if not passed:
        return fail(f"smoke test of v{number} failed", **evidence)
    return done(**evidence)


def _step_promote(ctx: StepContext) -> Outcome:
    deployment = Deployment.objects.select_for_update().get(pk=ctx.deployment.pk)
    new = ctx.version(ctx.step["version"])
    if deployment.stable_version_id != new.pk:
        deployment.previous_stable_version = deployment.stable_version
        deployment.stable_version = new
        deployment.promoted_at = clock.now()
        deployment.save()
    return done(stable=new.number, previous=ctx.step.get("previous"))


def _step_analyze(ctx: StepContext) -> Outcome:
    interval = float(ctx.step["interval_seconds"])
    # A warm-up before the window (Argo Rollouts' initialDelay, Kayenta's warm-up): discovery
    # needs a few scrapes to find a new canary, and its first requests are cold.
    warmup = float(ctx.step.get("warmup_seconds", 0))
    remaining = warmup + interval - ctx.elapsed()
    if remaining > 0:
        return wait(min(remaining, 30.0), analysis_in=round(remaining, 1))
    deployment = ctx.deployment
    config = ctx.release.config
    request = AnalysisRequest(
        deployment_id=deployment.pk,
        environment=deployment.environment.name,
        model=deployment.model.name,
        stable_version=ctx.step["stable"],
        canary_version=ctx.step["canary"],
        window_seconds=interval,
        min_requests=int(ctx.step.get("min_requests", 0)),
        max_error_rate=config.slo_error_rate,
        max_latency_p95_seconds=config.slo_latency_p95_ms / 1000.0,
        metrics_kind=deployment.environment.metrics_kind,
        metrics_url=deployment.environment.metrics_url,
        metrics_scrape_interval_seconds=deployment.environment.metrics_scrape_interval_seconds,
        metrics_queries=dict(config.metrics_queries or {}),
        drift_alert=config.drift_alert,
        baseline_profile=ctx.version(ctx.step["canary"]).baseline_profile or {},
        drift_warn=config.drift_warn,
        resources={
            "replicas": config.replicas,
            "cpu_request": config.cpu_request,
            "memory_request": config.memory_request,
            "gpu": config.gpu,
        },
        prices={
            "vcpu_hour": float(deployment.environment.vcpu_hour_price),
            "gib_hour": float(deployment.environment.gib_hour_price),
            "gpu_hour": float(deployment.environment.gpu_hour_price),
        },
        traffic=ctx.release.traffic or {},
        max_cost_increase=ctx.step.get("max_cost_increase"),
    )
    try:
        result = analyzer().analyze(request)
    except Exception as exc:  # an analysis bug or outage must never promote: inconclusive
        log.exception("analysis raised for release %s", ctx.release.pk)
        return Outcome(
            "pause",
            reason=f"analysis could not run: {type(exc).__name__}: {exc}",
            evidence={"verdict": "inconclusive", "error": str(exc)},
        )
    evidence = {
        "verdict": str(result.verdict),
        "reasons": result.reasons,
        "weight": ctx.step.get("weight"),
        **result.evidence,
    }
    record_step(
        ctx.release,
        "analysis",
        outcome=str(result.verdict),
        reason="; ".join(result.reasons),
        evidence=evidence,
    )
    if result.verdict is Verdict.PASS:
        return done(verdict="pass")
    if result.verdict is Verdict.FAIL:
        return Outcome(
            "rollback", reason="analysis failed: " + "; ".join(result.reasons), evidence=evidence
        )
    return Outcome(
        "pause", reason="analysis inconclusive: " + "; ".join(result.reasons), evidence=evidence
    )


def _step_note(ctx: StepContext) -> Outcome:
    return done(note=ctx.step.get("note", ""))


STEP_ACTIONS = {
    "deploy": _step_deploy,
    "await_ready": _step_await_ready,
    "traffic": _step_traffic,
    "smoke": _step_smoke,
    "promote": _step_promote,
    "analyze": _step_analyze,
    "note": _step_note,
}


# The loop -------------------------------------------------------------------------------------


def _lock(queryset: Any, pk: int) -> Any:
    """select_for_update without waiting: when another worker holds the row, it is acting,
    and we must not (it schedules the next reconcile itself)."""
    if connection.features.has_select_for_update_nowait:
        return queryset.select_for_update(nowait=True, of=("self",)).get(pk=pk)
    return queryset.select_for_update(of=("self",)).get(pk=pk)


def _target_deployment(release: Release, step: dict[str, Any]) -> Deployment:
    if step["target"] == "staging":
        return Deployment.objects.select_related("environment", "model", "config").get(
            environment=release.deployment.environment.staging, model=release.deployment.model
        )
    return release.deployment


def reconcile(release_id: int, *, force: bool = False) -> float | None:
    """Take at most the next step of a release. Returns the seconds until it should be looked at
    again, or None when nothing is due (finished, waiting for a person, or not due yet)."""
    with transaction.atomic():
        try:
            release = _lock(
                Release.objects.select_related(
                    "deployment__environment__staging",
                    "deployment__model__team",
                    "version",
                    "from_version",
                    "config",
                ),
                release_id,
            )
        except Release.DoesNotExist:
            return None
        except DatabaseError:
            return None  # another worker holds the release
        now = clock.now()
        if release.is_terminal:
            return None
        if not force and release.next_reconcile_at and release.next_reconcile_at > now:
            return None  # not due: the task that is due will come (or the sweep will)
        release.reconcile_count += 1
        delay = _advance(release)
        release.next_reconcile_at = (
            now + timedelta(seconds=delay)
            if delay is not None and not release.is_terminal
            else None
        )
        release.save()
        return delay if not release.is_terminal else None


def _advance(release: Release) -> float | None:
    state = release.state
    if state in WAITING_FOR_A_PERSON:
        return None  # a person acts next
    if state == ReleaseState.APPROVED:
        first = release.current_step
        target = PHASE_STATE[first["phase"]] if first else ReleaseState.PROGRESSING
        transition(release, target, actor=ENGINE, kind="start", reason="approved: starting")
        release.step_started_at = clock.now()
        return 0.0
    if state == ReleaseState.ROLLING_BACK:
        return _advance_rolling_back(release)
    return _advance_plan(release)


def _advance_plan(release: Release) -> float | None:
    step = release.current_step
    if step is None:
        transition(
            release,
            ReleaseState.PROMOTED,
            actor=ENGINE,
            kind="promoted",
            outcome="ok",
            reason=f"v{release.version.number} serves all traffic",
        )
        return None
    phase_state = PHASE_STATE[step["phase"]]
    if release.state != phase_state:
        transition(
            release,
            phase_state,
            actor=ENGINE,
            kind=f"enter_{step['phase']}",
            reason=f"{step['phase']} phase",
        )
        release.step_started_at = clock.now()
    deployment = _target_deployment(release, step)
    ctx = StepContext(release, step, deployment, runtime_of(deployment), deployment_ref(deployment))
    try:
        outcome = STEP_ACTIONS[step["action"]](ctx)
    except PermanentRuntimeError as exc:
        outcome = fail(f"the runtime refused {step['action']}: {exc}")
    # TransientRuntimeError propagates: the task retries with backoff, the transaction rolls
    # back, and the step is taken again (it is idempotent).
    if outcome.kind == "done":
        if step["action"] != "analyze":  # the analysis already recorded its own step
            record_step(release, step["action"], outcome="ok", evidence=outcome.evidence)
        release.step_index += 1
        release.step_started_at = clock.now()
        return 0.0
    if outcome.kind == "wait":
        return outcome.delay
    if outcome.kind == "pause":
        _pause(release, ENGINE, outcome.reason, outcome.evidence, notify=True)
        return None
    if outcome.kind == "rollback":
        start_rollback(
            release, actor=ENGINE, reason=outcome.reason, evidence=outcome.evidence, automatic=True
        )
        return 0.0
    # fail
    record_step(
        release, step["action"], outcome="fail", reason=outcome.reason, evidence=outcome.evidence
    )
    if step["phase"] == "production" and release.from_version_id:
        start_rollback(
            release, actor=ENGINE, reason=outcome.reason, evidence=outcome.evidence, automatic=True
        )
        return 0.0
    _restore_staging(release, step)
    transition(
        release,
        ReleaseState.FAILED,
        actor=ENGINE,
        kind="fail",
        outcome="fail",
        reason=outcome.reason,
        evidence=outcome.evidence,
    )
    return None


def _restore_staging(release: Release, step: dict[str, Any]) -> None:
    """A release that fails in staging leaves staging serving what it served before."""
    if step["target"] != "staging":
        return
    staging = _target_deployment(release, step)
    if staging.stable_version_id is None or staging.stable_version_id == release.version_id:
        staging_prev = next(
            (
                s.get("previous")
                for s in release.plan
                if s["target"] == "staging" and s["action"] == "promote"
            ),
            None,
        )
        if staging_prev is None:
            return
        number = staging_prev
        Deployment.objects.filter(pk=staging.pk).update(
            stable_version=ModelVersion.objects.get(
                model_id=release.version.model_id, number=number
            )
        )
    else:
        number = staging.stable_version.number
    runtime = runtime_of(staging)
    ref = deployment_ref(staging)
    if can_serve(runtime.version_status(ref, number)):
        runtime.set_traffic(ref, TrafficSplit.all_to(number))
        runtime.scale_version(ref, release.version.number, 0)


def _pause(
    release: Release, actor: Actor, reason: str, evidence: dict[str, Any], *, notify: bool
) -> None:
    release.paused_from = release.state
    transition(
        release,
        ReleaseState.PAUSED,
        actor=actor,
        kind="pause",
        outcome="inconclusive" if notify else "",
        reason=reason,
        evidence=evidence,
    )
    if notify and not release.inconclusive_notified:
        # Owners hear about an inconclusive analysis once per release, not at every interval.
        release.inconclusive_notified = True
        notify_owners(release, f"Release #{release.pk} paused: {reason}")


def notify_owners(release: Release, message: str) -> None:
    team = release.deployment.model.team
    emails = list(
        team.memberships.filter(role=Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    record_step(
        release,
        "notify",
        outcome="sent",
        reason=message,
        evidence={"recipients": len(emails), "team": team.slug},
    )
    if emails:
        transaction.on_commit(
            lambda: send_mail(
                subject=f"[modelplane] {release.deployment.model.name}: {message}"[:200],
                message=f"{message}\n\nRelease: {settings.PORTAL_URL}/releases/{release.pk}/",
                from_email=None,
                recipient_list=emails,
                fail_silently=True,
            )
        )


# Rollback -------------------------------------------------------------------------------------


def start_rollback(
    release: Release,
    *,
    actor: Actor,
    reason: str,
    evidence: dict[str, Any] | None = None,
    automatic: bool = False,
    aborting: bool = False,
) -> Rollback | None:
    """Turn an active release around: all traffic back to the stable version it started from.
    The Rollback row carries the work; the release waits in rolling_back until it is done."""
    target = release.from_version
    if aborting:
        release.status_reason = "aborting"
    if target is None:
        # Nothing served before: withdrawing the new version is the whole rollback.
        transition(
            release,
            ReleaseState.ABORTED if aborting else ReleaseState.FAILED,
            actor=actor,
            kind="abort" if aborting else "fail",
            reason=reason,
            evidence=evidence,
        )
        runtime_of(release.deployment).scale_version(
            deployment_ref(release.deployment), release.version.number, 0
        )
        return None
    rollback = Rollback.objects.create(
        deployment=release.deployment,
        release=release,
        from_version=release.version,
        to_version=target,
        actor_label=actor.label,
        reason=reason,
        automatic=automatic,
        evidence={"trigger": evidence or {}, "aborting": aborting},
    )
    transition(
        release,
        ReleaseState.ROLLING_BACK,
        actor=actor,
        kind="abort" if aborting else "rollback",
        reason=reason,
        evidence={"rollback_id": rollback.pk, "to_version": target.number, **(evidence or {})},
        outcome="fail" if automatic else "",
    )
    schedule_rollback(rollback.pk)
    return rollback


def _advance_rolling_back(release: Release) -> float | None:
    rollback = release.rollbacks.order_by("-id").first()
    if rollback is None:
        # Crash between states: the release says rolling back but no rollback was recorded.
        rollback = Rollback.objects.create(
            deployment=release.deployment,
            release=release,
            from_version=release.version,
            to_version=release.from_version,
            actor_label=ENGINE.label,
            reason="resumed an interrupted rollback",
        )
    if rollback.state == RollbackState.PENDING:
        delay = _rollback_step(rollback)
        if delay is not None:
            return delay
    if rollback.state == RollbackState.DONE:
        aborting = bool(rollback.evidence.get("aborting"))
        release.traffic = {"weights": {str(rollback.to_version.number): 100}, "mirror": None}
        transition(
            release,
            ReleaseState.ABORTED if aborting else ReleaseState.ROLLED_BACK,
            actor=ENGINE,
            kind="aborted" if aborting else "rolled_back",
            outcome="ok",
            reason=f"traffic back on v{rollback.to_version.number}",
            evidence={"rollback_id": rollback.pk, **rollback.evidence},
        )
        return None
    return POLL_SECONDS


def rollback_reconcile(rollback_id: int) -> float | None:
    """Drive one rollback: the fastest path in the system, and it needs no metrics."""
    with transaction.atomic():
        try:
            rollback = _lock(
                Rollback.objects.select_related(
                    "deployment__environment", "deployment__model", "to_version", "release"
                ),
                rollback_id,
            )
        except (Rollback.DoesNotExist, DatabaseError):
            return None
        if rollback.state != RollbackState.PENDING:
            return None
        return _rollback_step(rollback)


def _rollback_step(rollback: Rollback) -> float | None:
    deployment = rollback.deployment
    runtime = runtime_of(deployment)
    ref = deployment_ref(deployment)
    target = rollback.to_version.number
    status = runtime.version_status(ref, target)
    if not can_serve(status):
        age = (clock.now() - rollback.created_at).total_seconds()
        if status.readiness is Readiness.FAILED or age > DEFAULT_PROGRESS_DEADLINE_SECONDS:
            rollback.state = RollbackState.FAILED
            rollback.completed_at = clock.now()
            rollback.evidence = {**rollback.evidence, "error": status.message or "not ready"}
            rollback.save()
            audit.record(
                actor=ENGINE,
                action="deployment.rollback_failed",
                target=deployment,
                reason=rollback.evidence["error"],
            )
            return None
        # The old version was scaled down (kept warm no longer): bring it back, then switch.
        config = deployment.config
        runtime.apply_version(
            ref, version_spec(deployment, config, rollback.to_version, None), Track.STABLE
        )
        return POLL_SECONDS
    split = TrafficSplit.all_to(target)
    runtime.set_traffic(ref, split)
    if not runtime.traffic_applied(ref, split):
        # Never scale the others down before the data plane serves the target alone.
        return 0.5
    for number in runtime.list_versions(ref):
        if number != target:
            runtime.scale_version(ref, number, 0)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.stable_version_id != rollback.to_version_id:
        deployment.stable_version = rollback.to_version
        deployment.previous_stable_version = None
        deployment.promoted_at = clock.now()
        deployment.save()
    rollback.state = RollbackState.DONE
    rollback.completed_at = clock.now()
    rollback.evidence = {**rollback.evidence, "traffic": {str(target): 100}}
    rollback.save()
    audit.record(
        actor=ENGINE,
        action="deployment.rolled_back",
        target=deployment,
        after={"stable_version": target},
        reason=rollback.reason,
    )
    if rollback.release_id and rollback.release.state == ReleaseState.ROLLING_BACK:
        schedule_reconcile(rollback.release_id)
    return None


# Scheduling -----------------------------------------------------------------------------------


def schedule_reconcile(release_id: int, countdown: float = 0.0) -> None:
    """Enqueue a reconcile once the current transaction commits (never before: the worker must
    see what we wrote)."""
    from .tasks import reconcile_release

    transaction.on_commit(
        lambda: reconcile_release.apply_async((release_id,), {"force": True}, countdown=countdown)
    )


def schedule_rollback(rollback_id: int) -> None:
    from .tasks import execute_rollback

    transaction.on_commit(lambda: execute_rollback.apply_async((rollback_id,)))
