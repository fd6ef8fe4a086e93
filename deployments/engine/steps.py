"""Step actions: what each kind of plan step does to the runtime, and the Outcome the loop acts
on. Every action is idempotent (it runs again after a crash at any line); none moves the plan
position or changes the release's state (loop.py does that, after the side effect succeeded)."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema

from core import clock
from registry.models import ModelVersion

from ..analysis import AnalysisRequest, Verdict, analyzer
from ..models import Deployment, Release
from ..runtime.base import DeploymentRef, Readiness, Runtime, Track
from .binding import can_serve, version_spec
from .plan import (
    AnalyzeStep,
    AwaitReadyStep,
    DeployStep,
    NoteStep,
    PlanStep,
    PromoteStep,
    SmokeStep,
    StepTarget,
    TrafficStep,
    progress_deadline,
    steps_of,
)
from .scheduling import POLL_SECONDS
from .transitions import record_step

log = logging.getLogger(__name__)

SMOKE_TIMEOUT_SECONDS = 10.0
ROUTE_PROPAGATION_SECONDS = 30.0  # how long a routed smoke test waits for a traffic switch


# Step outcomes --------------------------------------------------------------------------------


class OutcomeKind(enum.StrEnum):
    DONE = "done"  # the side effect took: move to the next step
    WAIT = "wait"  # look again after `delay`
    FAIL = "fail"
    PAUSE = "pause"  # a person decides (an inconclusive analysis)
    ROLLBACK = "rollback"  # the analysis failed: turn the release around


@dataclass
class Outcome:
    kind: OutcomeKind
    delay: float = 0.0
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def done(**evidence: Any) -> Outcome:
    return Outcome(OutcomeKind.DONE, evidence=evidence)


def wait(seconds: float = POLL_SECONDS, **evidence: Any) -> Outcome:
    return Outcome(OutcomeKind.WAIT, delay=seconds, evidence=evidence)


def fail(reason: str, **evidence: Any) -> Outcome:
    return Outcome(OutcomeKind.FAIL, reason=reason, evidence=evidence)


@dataclass
class StepContext:
    release: Release
    deployment: Deployment  # the deployment the step acts on (staging or target)
    runtime: Runtime
    ref: DeploymentRef

    def version(self, number: int) -> ModelVersion:
        return ModelVersion.objects.get(model_id=self.release.version.model_id, number=number)

    def elapsed(self) -> float:
        started = self.release.step_started_at or clock.now()
        return (clock.now() - started).total_seconds()

    def deadline(self, step: AwaitReadyStep | TrafficStep) -> float:
        """How long the step may wait on the runtime: frozen in the plan, or (a plan stored
        before its traffic steps carried one) the release's deployment's configured deadline."""
        if step.deadline_seconds is not None:
            return float(step.deadline_seconds)
        return float(progress_deadline(self.release.deployment.effective_strategy_params))


def take_step(ctx: StepContext, step: PlanStep) -> Outcome:
    match step:
        case DeployStep():
            return _deploy(ctx, step)
        case AwaitReadyStep():
            return _await_ready(ctx, step)
        case TrafficStep():
            return _traffic(ctx, step)
        case SmokeStep():
            return _smoke(ctx, step)
        case PromoteStep():
            return _promote(ctx, step)
        case AnalyzeStep():
            return _analyze(ctx, step)
        case NoteStep():
            return done(note=step.note)
    raise TypeError(f"no action for a {type(step).__name__}")


# Actions --------------------------------------------------------------------------------------


def _deploy(ctx: StepContext, step: DeployStep) -> Outcome:
    version = ctx.version(step.version)
    config = ctx.deployment.config if step.target == StepTarget.STAGING else ctx.release.config
    spec = version_spec(ctx.deployment, config, version, ctx.release.pk)
    ctx.runtime.apply_version(ctx.ref, spec, step.track)
    return done(applied=spec.version, replicas=spec.replicas, track=step.track.value)


def _await_ready(ctx: StepContext, step: AwaitReadyStep) -> Outcome:
    number = step.version
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
    deadline = ctx.deadline(step)
    if ctx.elapsed() > deadline:
        return fail(
            f"v{number} was not ready within its progress deadline of {deadline:.0f}s", **evidence
        )
    if status.readiness is Readiness.ABSENT:
        # Level-triggered: the workload vanished (or was never applied): apply it again, on the
        # track the plan deployed it with (a canary comes back as the canary).
        deploy = DeployStep(
            phase=step.phase, target=step.target, version=number, track=_planned_track(ctx, step)
        )
        _deploy(ctx, deploy)
    return wait(**evidence)


def _planned_track(ctx: StepContext, step: AwaitReadyStep) -> Track:
    """The track of the deploy step that brought this version up on this target before `step`;
    stable when the plan has none (it never lacks one as built by build_plan)."""
    for earlier in reversed(steps_of(ctx.release)[: ctx.release.step_index]):
        if (
            isinstance(earlier, DeployStep)
            and earlier.version == step.version
            and earlier.target == step.target
        ):
            return earlier.track
    return Track.STABLE


def _traffic(ctx: StepContext, step: TrafficStep) -> Outcome:
    data = step.to_json()
    weights, mirror = data["weights"], data.get("mirror")
    deadline = ctx.deadline(step)
    receivers = [v for v, w in step.weights.items() if w > 0]
    if step.mirror:
        receivers.append(step.mirror.version)
    # Traffic only to a version observed Ready, never before (KServe #5983).
    for number in receivers:
        status = ctx.runtime.version_status(ctx.ref, number)
        if status.readiness is Readiness.FAILED:
            return fail(f"v{number} is failing: {status.message}", version=number)
        if not can_serve(status):
            if ctx.elapsed() > deadline:
                return fail(
                    f"v{number} did not become ready to receive traffic within the progress "
                    f"deadline of {deadline:.0f}s",
                    version=number,
                )
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
    split = step.split()
    ctx.runtime.set_traffic(ctx.ref, split)
    if not ctx.runtime.traffic_applied(ctx.ref, split):
        # Written, not yet served: the next look re-applies (idempotent) and checks again. The
        # step (and whatever follows it, analysis windows, scale-downs) waits for the data plane.
        if ctx.elapsed() > deadline:
            return fail(
                "the traffic change never reached the data plane within the progress deadline "
                f"of {deadline:.0f}s",
                weights=weights,
            )
        return wait(1.0, waiting_for="route", weights=weights)
    if step.target == StepTarget.TARGET:
        ctx.release.traffic = {"weights": weights, "mirror": mirror}
    return done(weights=weights, mirror=mirror)


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


def _smoke(ctx: StepContext, step: SmokeStep) -> Outcome:
    number = step.version
    version = ctx.version(number)
    if step.routed:
        # Through the entry point: proves the traffic switch took, not only that v serves.
        url = ctx.runtime.endpoint(ctx.ref) or ctx.runtime.endpoint(ctx.ref, number)
    else:
        url = ctx.runtime.endpoint(ctx.ref, number)
    passed, evidence = smoke_test(url, version)
    if step.routed and passed:
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


def _promote(ctx: StepContext, step: PromoteStep) -> Outcome:
    deployment = Deployment.objects.select_for_update().get(pk=ctx.deployment.pk)
    new = ctx.version(step.version)
    if deployment.stable_version_id != new.pk:
        deployment.previous_stable_version = deployment.stable_version
        deployment.stable_version = new
        deployment.promoted_at = clock.now()
        deployment.save()
    # Relabel the promoted version as stable. The track is metadata on both runtimes (never in a
    # pod template or a process's launch identity), so this restarts nothing; idempotent.
    spec = version_spec(deployment, ctx.release.config, new, ctx.release.pk)
    ctx.runtime.apply_version(ctx.ref, spec, Track.STABLE)
    return done(stable=new.number, previous=step.previous, track=Track.STABLE.value)


def _analyze(ctx: StepContext, step: AnalyzeStep) -> Outcome:
    interval = step.interval_seconds
    # A warm-up before the window (Argo Rollouts' initialDelay, Kayenta's warm-up): discovery
    # needs a few scrapes to find a new canary, and its first requests are cold.
    remaining = step.warmup_seconds + interval - ctx.elapsed()
    if remaining > 0:
        return wait(min(remaining, 30.0), analysis_in=round(remaining, 1))
    deployment = ctx.deployment
    config = ctx.release.config
    request = AnalysisRequest(
        deployment_id=deployment.pk,
        environment=deployment.environment.name,
        model=deployment.model.name,
        stable_version=step.stable,
        canary_version=step.canary,
        window_seconds=interval,
        min_requests=step.min_requests,
        max_error_rate=config.slo_error_rate,
        max_latency_p95_seconds=config.slo_latency_p95_ms / 1000.0,
        metrics_kind=deployment.environment.metrics_kind,
        metrics_url=deployment.environment.metrics_url,
        metrics_scrape_interval_seconds=deployment.environment.metrics_scrape_interval_seconds,
        metrics_queries=dict(config.metrics_queries or {}),
        drift_alert=config.drift_alert,
        baseline_profile=ctx.version(step.canary).baseline_profile or {},
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
        max_cost_increase=step.max_cost_increase,
        review_policy=dict(config.review_policy or {}),
        release_created_at=ctx.release.created_at,
    )
    try:
        result = analyzer().analyze(request)
    except Exception as exc:  # an analysis bug or outage must never promote: inconclusive
        log.exception("analysis raised for release %s", ctx.release.pk)
        return Outcome(
            OutcomeKind.PAUSE,
            reason=f"analysis could not run: {type(exc).__name__}: {exc}",
            evidence={"verdict": "inconclusive", "error": str(exc)},
        )
    evidence = {
        "verdict": str(result.verdict),
        "reasons": result.reasons,
        "weight": step.weight,
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
            OutcomeKind.ROLLBACK,
            reason="analysis failed: " + "; ".join(result.reasons),
            evidence=evidence,
        )
    return Outcome(
        OutcomeKind.PAUSE,
        reason="analysis inconclusive: " + "; ".join(result.reasons),
        evidence=evidence,
    )
