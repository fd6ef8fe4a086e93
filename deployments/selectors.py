"""Reads of environments, deployments and releases shaped for the pages and the API, with their
joins up front so query counts stay flat as data grows, plus pure shaping of what a release's
plan and steps say (its path, gates, timeline). Nothing here writes or decides who may act."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Prefetch, QuerySet, Window
from django.db.models.functions import RowNumber

from core.errors import NotFound
from identity.models import team_roles, visible_team_ids
from identity.permissions import Action, can, require
from registry.models import ModelVersion, RegisteredModel

from . import policy
from .engine import (
    AnalyzeStep,
    AwaitReadyStep,
    DeployStep,
    NoteStep,
    PlanStep,
    PromoteStep,
    SmokeStep,
    StepPhase,
    StepTarget,
    TrafficStep,
    steps_of,
)
from .models import (
    ACTIVE_STATES,
    ENDED_SHORT_STATES,
    Approval,
    ApprovalDecision,
    Deployment,
    DeploymentConfig,
    Environment,
    Release,
    ReleaseState,
    ReleaseStep,
    Rollback,
    RollbackState,
)

RECENT_RELEASES = 10
RECENT_ROLLBACKS = 10

# Environments ---------------------------------------------------------------------------------


def environment_list() -> QuerySet[Environment]:
    """Every environment: names and kinds are not secret, so any signed-in principal sees them."""
    return Environment.objects.select_related("staging").order_by("name")


def environment_get(name: str) -> Environment:
    environment = environment_list().filter(name=name).first()
    if environment is None:
        raise NotFound(f"no environment {name!r}", field="environment")
    return environment


# Deployments ----------------------------------------------------------------------------------


def _active_releases() -> Prefetch:
    return Prefetch(
        "releases",
        queryset=Release.objects.filter(state__in=ACTIVE_STATES).select_related(
            "version", "from_version"
        ),
        to_attr="active_releases",
    )


def _last_rollbacks() -> Prefetch:
    # The newest rollback per deployment, in one query for the whole list (DISTINCT ON would
    # be PostgreSQL-only; deployments have few rollbacks, so the page slices in Python).
    return Prefetch(
        "rollbacks",
        queryset=Rollback.objects.select_related("to_version", "from_version").order_by(
            "-created_at", "-id"
        ),
        to_attr="rollback_history",
    )


def _newest_rollback() -> Prefetch:
    # Only the newest rollback, for one deployment's page or API answer: a deployment rolled back
    # many times must not load its whole history to show the last one (bench/rollback.py).
    newest = Window(
        RowNumber(),
        partition_by=[F("deployment_id")],
        order_by=[F("created_at").desc(), F("id").desc()],
    )
    return Prefetch(
        "rollbacks",
        queryset=Rollback.objects.select_related("to_version", "from_version")
        .annotate(newest=newest)
        .filter(newest=1),
        to_attr="rollback_history",
    )


def deployment_list(principal: Any) -> QuerySet[Deployment]:
    """Deployments the principal may see, each with `active_releases` (0 or 1) and
    `rollback_history` prefetched: a constant number of queries for any number of rows."""
    return (
        Deployment.objects.visible_to(principal)
        .select_related(
            "model__team",
            "environment",
            "config",
            "stable_version",
            "previous_stable_version",
        )
        .prefetch_related(_active_releases(), _last_rollbacks())
        .order_by("environment__name", "name")
    )


def deployment_get(principal: Any, deployment_id: int | str, *, field: str = "id") -> Deployment:
    """One visible deployment; `field` names where the id came from (URL or request body)."""
    try:
        pk = int(deployment_id)
    except (TypeError, ValueError):
        raise NotFound(f"{deployment_id!r} is not a deployment id", field=field) from None
    deployment = (
        deployment_list(principal)
        .prefetch_related(None)
        .prefetch_related(_active_releases(), _newest_rollback())
        .filter(pk=pk)
        .first()
    )
    if deployment is None:
        raise NotFound(f"no deployment {deployment_id}", field=field)
    require(principal, Action.DEPLOYMENT_VIEW, deployment)
    return deployment


def active_release(deployment: Deployment) -> Release | None:
    """The deployment's active release, from the prefetch when there is one."""
    releases = getattr(deployment, "active_releases", None)
    if releases is None:
        return (
            deployment.releases.filter(state__in=ACTIVE_STATES)
            .select_related("version", "from_version")
            .first()
        )
    return releases[0] if releases else None


def last_rollback(deployment: Deployment) -> Rollback | None:
    history = getattr(deployment, "rollback_history", None)
    if history is None:
        return deployment.rollbacks.select_related("to_version", "from_version").first()
    return history[0] if history else None


@dataclass(frozen=True)
class DeploymentLive:
    """The part of the deployment page that moves: its tile (stable version, active release,
    traffic), its newest rollback, and whether something is still under way (a release, or a
    rollback not yet done): the page polls only while `in_progress`."""

    tile: DeploymentTile
    rollback: Rollback | None

    @property
    def rolling_back(self) -> bool:
        return self.rollback is not None and self.rollback.state == RollbackState.PENDING

    @property
    def in_progress(self) -> bool:
        return self.tile.release is not None or self.rolling_back


def deployment_live(deployment: Deployment) -> DeploymentLive:
    """From what `deployment_get` prefetched: no query of its own."""
    return DeploymentLive(deployment_tile(deployment), last_rollback(deployment))


@dataclass(frozen=True)
class Setting:
    """One configured value as a page shows it: a human label and its text, never a repr."""

    key: str
    label: str
    text: str


def _seconds(value: Any) -> str:
    seconds = float(value)
    text = f"{seconds:g} s"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{text} ({seconds / size:g} {unit})"
    return text


def _percent(value: Any) -> str:
    return f"{float(value):g}%"


def _plain(value: Any) -> str:
    """Any JSON value as words: lists joined, objects as "key: value", never a Python repr."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "—"
    if isinstance(value, dict):
        return (
            "; ".join(f"{str(k).replace('_', ' ')}: {_plain(v)}" for k, v in value.items()) or "—"
        )
    return str(value)


# What each strategy parameter means (deployments/validation.STRATEGY_PARAMS, engine/plan.py),
# in the order a reader wants them: key -> (label, how its value reads).
STRATEGY_SETTINGS: dict[str, tuple[str, Any]] = {
    "steps": ("Traffic steps", lambda v: " → ".join(_percent(s) for s in v)),
    "analysis_interval_seconds": (
        "Analysis window",
        lambda v: _seconds(v) if float(v) else "none (no canary analysis)",
    ),
    "analysis_warmup_seconds": ("Warm-up before each window", _seconds),
    "min_requests": ("Minimum requests per side", lambda v: f"{int(v):,}"),
    "mirror_percent": ("Mirrored to the new version", _percent),
    "max_cost_increase": ("Cost increase allowed", lambda v: _percent(float(v) * 100)),
    "keep_warm_seconds": ("Previous version kept warm", _seconds),
    "progress_deadline_seconds": ("Progress deadline", _seconds),
}


def strategy_settings(params: dict[str, Any]) -> list[Setting]:
    """A strategy's effective parameters as labelled fields ("Traffic steps: 20% → 50% →
    100%"); a key this list does not know still reads as "its name: its value"."""
    rows = []
    for key, (label, fmt) in STRATEGY_SETTINGS.items():
        if key in params:
            try:
                text = fmt(params[key])
            except (TypeError, ValueError):
                text = _plain(params[key])
            rows.append(Setting(key, label, text))
    for key in sorted(set(params) - set(STRATEGY_SETTINGS), key=str):
        rows.append(Setting(key, str(key).replace("_", " ").capitalize(), _plain(params[key])))
    return rows


def config_settings(config: DeploymentConfig) -> list[Setting]:
    """The parts of a config revision beyond its size and SLO, as labelled fields: drift
    thresholds, budget, public environment, metrics query overrides and the review policy."""
    rows = [
        Setting(
            "drift",
            "Drift thresholds",
            f"warn at {config.drift_warn:g}, alert at {config.drift_alert:g}",
        ),
        Setting(
            "monthly_budget",
            "Monthly budget",
            f"{config.monthly_budget:,.2f}" if config.monthly_budget is not None else "none",
        ),
    ]
    env = config.env if isinstance(config.env, dict) else {}
    rows.append(
        Setting(
            "env",
            "Environment",
            ", ".join(f"{k}={_plain(v)}" for k, v in sorted(env.items())) or "none",
        )
    )
    queries = config.metrics_queries if isinstance(config.metrics_queries, dict) else {}
    rows.append(
        Setting(
            "metrics_queries",
            "Metrics queries overridden",
            ", ".join(sorted(str(k).replace("_", " ") for k in queries)) or "none (the defaults)",
        )
    )
    policy_ = config.review_policy if isinstance(config.review_policy, dict) else {}
    rows.append(
        Setting(
            "review_policy",
            "Human review",
            _plain(policy_) if policy_ else "none (no prediction is reviewed)",
        )
    )
    return rows


def deployment_configs(deployment: Deployment) -> QuerySet[DeploymentConfig]:
    """The config revision history, newest first."""
    return deployment.configs.order_by("-revision")


def deployment_releases(deployment: Deployment) -> QuerySet[Release]:
    return deployment.releases.select_related("version", "from_version").order_by(
        "-created_at", "-id"
    )


def deployment_rollbacks(deployment: Deployment) -> QuerySet[Rollback]:
    return deployment.rollbacks.select_related("to_version", "from_version", "release").order_by(
        "-created_at", "-id"
    )


def deployment_versions(deployment: Deployment) -> QuerySet[ModelVersion]:
    """The versions of the deployment's model, newest first, to start a release with."""
    return ModelVersion.objects.filter(model_id=deployment.model_id).order_by("-number")


def deployment_version(deployment: Deployment, number: int) -> ModelVersion:
    version = deployment_versions(deployment).select_related("model").filter(number=number).first()
    if version is None:
        raise NotFound(f"{deployment.model.name} has no version {number}", field="version")
    return version


def rollback_target(deployment: Deployment) -> ModelVersion | None:
    """The version a press of the rollback button would put all traffic on (for the
    confirmation); the rule itself is policy.rollback_target, which the service enforces."""
    return policy.rollback_target(deployment).version


@dataclass(frozen=True)
class DeploymentTile:
    """One deployment as the overview shows it."""

    deployment: Deployment
    release: Release | None
    weights: list[tuple[int, int]]  # (version number, percent), highest weight first
    state: str
    state_label: str


def deployment_tile(deployment: Deployment) -> DeploymentTile:
    release = active_release(deployment)
    if release is not None:
        weights = traffic_weights(release)
        state, label = release.state, release.get_state_display()
    else:
        stable = deployment.stable_version
        weights = [(stable.number, 100)] if stable else []
        state, label = ("serving", "Serving") if stable else ("empty", "Nothing deployed")
    return DeploymentTile(deployment, release, weights, state, label)


def deployment_overview_ids(principal: Any) -> QuerySet[Deployment]:
    """The ids of the deployments the principal may see, in the overview's order (production
    environments last, then by environment and name): a narrow query to count and slice, so a
    page of the overview joins its related rows for that page only, not for every deployment
    before the sort (`deployments_in_order` loads them)."""
    return (
        Deployment.objects.visible_to(principal)
        .order_by("environment__is_production", "environment__name", "name", "pk")
        .values_list("pk", flat=True)
    )


def deployments_in_order(principal: Any, ids: QuerySet[Deployment]) -> list[Deployment]:
    """The deployments of `ids` (a slice of `deployment_overview_ids`, not yet read) as
    `deployment_list` loads them, in the overview's order: one query, whose subquery finds the
    page's ids before any row is joined."""
    return list(
        deployment_list(principal)
        .filter(pk__in=ids)
        .order_by("environment__is_production", "environment__name", "name", "pk")
    )


def deployment_tiles(
    deployments: Iterable[Deployment],
) -> list[tuple[Environment, list[DeploymentTile]]]:
    """The deployments (one page of `deployment_overview_ids`, loaded) grouped per
    environment, production last, each with its stable version, the version of its active
    release and the traffic split: no query beyond the list's own three."""
    groups: dict[int, tuple[Environment, list[DeploymentTile]]] = {}
    for deployment in deployments:
        env = deployment.environment
        groups.setdefault(env.pk, (env, []))[1].append(deployment_tile(deployment))
    return sorted(groups.values(), key=lambda g: (g[0].is_production, g[0].name))


# Releases -------------------------------------------------------------------------------------


def release_list(principal: Any) -> QuerySet[Release]:
    return (
        Release.objects.visible_to(principal)
        .select_related(
            "deployment__environment",
            "deployment__model__team",
            "version",
            "from_version",
        )
        .order_by("-created_at", "-id")
    )


def release_detail(principal: Any, release_id: int | str) -> Release:
    """A release with its steps and approvals (and the approvers) prefetched."""
    try:
        pk = int(release_id)
    except (TypeError, ValueError):
        raise NotFound(f"{release_id!r} is not a release id", field="id") from None
    release = (
        release_list(principal)
        .select_related("config", "author")
        .prefetch_related(
            Prefetch("steps", queryset=ReleaseStep.objects.order_by("id")),
            Prefetch("approvals", queryset=Approval.objects.select_related("user")),
        )
        .filter(pk=pk)
        .first()
    )
    if release is None:
        raise NotFound(f"no release {release_id}", field="id")
    require(principal, Action.DEPLOYMENT_VIEW, release)
    return release


def traffic_weights(release: Release) -> list[tuple[int, int]]:
    """The split last applied in production as (version, percent), highest first; before any
    traffic step, everything is still on the version the release started from."""
    weights = (release.traffic or {}).get("weights") or {}
    if not weights:
        return [(release.from_version.number, 100)] if release.from_version_id else []
    pairs = [(int(v), int(w)) for v, w in weights.items()]
    return sorted(pairs, key=lambda p: (-p[1], -p[0]))


@dataclass(frozen=True)
class PathStep:
    """One stop on a release's path, as the page draws it."""

    index: int
    phase: StepPhase
    label: str
    status: str  # done | current | pending | failed


def _step_label(step: PlanStep) -> str:
    where = "staging" if step.target == StepTarget.STAGING else "production"
    match step:
        case TrafficStep():
            split = ", ".join(f"v{v} {w}%" for v, w in step.weights.items())
            if step.mirror:
                split += f", mirror {step.mirror.percent}% to v{step.mirror.version}"
            return f"Traffic in {where}: {split}"
        case AnalyzeStep():
            kind = "shadow analysis" if step.shadow else f"analysis at {step.weight}%"
            return f"Canary {kind} over {int(step.interval_seconds)}s"
        case DeployStep():
            return f"Deploy v{step.version} to {where} ({step.track})"
        case AwaitReadyStep():
            return f"Wait for v{step.version} ready in {where}"
        case SmokeStep():
            return f"Smoke-test v{step.version} in {where}"
        case PromoteStep():
            return f"Promote v{step.version} in {where}"
        case NoteStep() if step.note:
            return step.note
    return str(step.action)


def release_path(release: Release) -> list[PathStep]:
    """The frozen plan with the current step marked, ending with the promotion."""
    failed = release.state in ENDED_SHORT_STATES
    out = []
    for index, step in enumerate(steps_of(release)):
        if index < release.step_index or release.state == ReleaseState.PROMOTED:
            status = "done"
        elif index == release.step_index and not release.is_terminal:
            status = "current"
        elif index == release.step_index and failed:
            status = "failed"
        else:
            status = "pending"
        out.append(PathStep(index, step.phase, _step_label(step), status))
    return out


@dataclass(frozen=True)
class Gate:
    """A check a release must pass, and what decided it."""

    name: str
    label: str
    status: str  # pending | passed | failed | skipped
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    analysis: dict[str, Any] | None = None


def _steps_at(steps: Iterable[ReleaseStep], indexes: set[int]) -> list[ReleaseStep]:
    return [s for s in steps if s.plan_index in indexes]


def _gate_from_plan(
    name: str, label: str, release: Release, indexes: list[int], steps: list[ReleaseStep]
) -> Gate:
    """A gate that covers some plan steps: passed once all are behind the release, failed when
    one failed, skipped when the plan has none or the release ended before reaching them."""
    if not indexes:
        return Gate(name, label, "skipped", "not in this release's plan")
    at = _steps_at(steps, set(indexes))
    failures = [s for s in at if s.outcome == "fail" and s.kind != "analysis"]
    evidence = {s.kind: s.evidence for s in at if s.kind in ("smoke", "await_ready", "note")}
    if failures:
        return Gate(name, label, "failed", failures[-1].reason, failures[-1].evidence)
    if release.step_index > max(indexes) or release.state == ReleaseState.PROMOTED:
        notes = [s.evidence.get("note") for s in at if s.kind == "note"]
        if notes and notes[0]:
            return Gate(name, label, "skipped", str(notes[0]), evidence)
        return Gate(name, label, "passed", f"{len(indexes)} steps done", evidence)
    if release.is_terminal:
        return Gate(name, label, "skipped", f"the release ended ({release.state}) before it")
    return Gate(name, label, "pending", "", evidence)


def release_gates(release: Release) -> list[Gate]:
    """The gates of a release, computed from its plan and recorded steps: approvals (n of m),
    staging deploy and smoke test, rollback rehearsal, and each production analysis."""
    steps = list(release.steps.all())
    approvals = list(release.approvals.all())
    approved = [a for a in approvals if a.decision == ApprovalDecision.APPROVE]
    rejected = [a for a in approvals if a.decision == ApprovalDecision.REJECT]
    who = ", ".join(a.user.get_username() for a in approved)
    count = f"{len(approved)} of {release.required_approvals}"
    if release.required_approvals == 0:
        approval = Gate("approvals", "Approvals", "skipped", "no approval required")
    elif rejected:
        approval = Gate(
            "approvals",
            "Approvals",
            "failed",
            f"rejected by {rejected[0].user.get_username()}: {rejected[0].comment}".rstrip(": "),
        )
    elif len(approved) >= release.required_approvals:
        approval = Gate("approvals", "Approvals", "passed", f"{count}: {who}")
    elif release.state != ReleaseState.AWAITING_APPROVAL:
        approval = Gate("approvals", "Approvals", "skipped", f"{count}; release {release.state}")
    else:
        approval = Gate("approvals", "Approvals", "pending", count + (f": {who}" if who else ""))
    gates = [approval]
    plan = steps_of(release)
    staging = [i for i, s in enumerate(plan) if s.phase == StepPhase.STAGING]
    rehearsal = [i for i, s in enumerate(plan) if s.phase == StepPhase.REHEARSAL]
    gates.append(
        _gate_from_plan("staging", "Staging deploy and smoke test", release, staging, steps)
    )
    gates.append(_gate_from_plan("rehearsal", "Rollback rehearsal", release, rehearsal, steps))
    for index, step in enumerate(plan):
        if not isinstance(step, AnalyzeStep):
            continue
        gates.append(_analysis_gate(release, index, step, steps))
    return gates


def _analysis_gate(
    release: Release, index: int, step: AnalyzeStep, steps: list[ReleaseStep]
) -> Gate:
    name = f"analysis-{index}"
    label = "Shadow analysis" if step.shadow else f"Canary analysis at {step.weight}%"
    results = [s for s in steps if s.plan_index == index and s.kind == "analysis"]
    if results:
        last = results[-1]
        status = {"pass": "passed", "fail": "failed", "skipped": "skipped"}.get(
            last.outcome, "pending"
        )
        detail = last.reason or last.outcome
        if last.outcome == "inconclusive":
            detail = f"inconclusive: {last.reason}"
        return Gate(name, label, status, detail, last.evidence, analysis_table(last.evidence))
    if release.step_index > index:
        return Gate(name, label, "passed", "")
    if release.is_terminal:
        return Gate(name, label, "skipped", f"the release ended ({release.state}) before it")
    return Gate(name, label, "pending", "")


ANALYSIS_METRICS = (
    ("requests", "Requests"),
    ("errors", "Errors"),
    ("error_rate", "Error rate"),
    ("latency_p50", "Latency p50 (s)"),
    ("latency_p95", "Latency p95 (s)"),
    ("latency_p99", "Latency p99 (s)"),
)


def analysis_table(evidence: dict[str, Any]) -> dict[str, Any] | None:
    """The numbers of an analysis step as rows a page can draw: stable vs canary per metric,
    and each SLO check with its value and limit. None when the evidence holds no numbers."""
    if not isinstance(evidence, dict):
        return None
    stable = evidence.get("stable_stats") or {}
    canary = evidence.get("canary_stats") or {}
    metrics = [
        {"label": label, "stable": stable.get(key), "canary": canary.get(key)}
        for key, label in ANALYSIS_METRICS
        if stable.get(key) is not None or canary.get(key) is not None
    ]
    checks = [
        {
            "name": name,
            "value": check.get("value"),
            "limit": check.get("limit"),
            "verdict": check.get("verdict"),
        }
        for name, check in sorted((evidence.get("slo_checks") or {}).items())
        if isinstance(check, dict)
    ]
    comparisons = [
        {
            "name": name,
            "verdict": cmp.get("verdict"),
            "p_value": cmp.get("p_value"),
            "reason": cmp.get("reason", ""),
        }
        for name, cmp in sorted((evidence.get("comparisons") or {}).items())
        if isinstance(cmp, dict)
    ]
    if not (metrics or checks or comparisons):
        return None
    return {
        "verdict": evidence.get("verdict"),
        "metrics": metrics,
        "checks": checks,
        "comparisons": comparisons,
    }


RELEASE_VERBS = ("approve", "reject", "promote", "pause", "resume", "abort")


def release_actions(principal: Any, release: Release) -> list[str]:
    """The actions a page offers this principal on this release: the ones its state allows
    (policy.allowed_actions) that this principal may take (permissions.can, which says no to
    CI tokens and to the author for approvals). The services enforce both."""
    allowed = policy.allowed_actions(release)
    offered: list[str] = []
    if "approve" in allowed and can(principal, Action.RELEASE_APPROVE, release):
        offered += ["approve", "reject"]
    if can(principal, Action.RELEASE_OPERATE, release):
        offered += [a for a in ("promote", "pause", "resume", "abort") if a in allowed]
    return offered


@dataclass(frozen=True)
class TimelineEntry:
    step: ReleaseStep
    analysis: dict[str, Any] | None


def release_timeline(release: Release) -> list[TimelineEntry]:
    """The recorded steps, oldest first, each with its analysis numbers when it has some."""
    return [
        TimelineEntry(step, analysis_table(step.evidence) if step.kind == "analysis" else None)
        for step in release.steps.all()
    ]


# Home: what needs the signed-in person ----------------------------------------------------------


def _approver_team_ids(principal: Any) -> set[int] | None:
    """The teams where `principal` may approve some release (None: every team), asked of
    `permissions.can` with an unsaved release of each team the principal belongs to and no
    author: the duty, the rank and the human-only rule stay in identity. No query."""
    teams = visible_team_ids(principal)
    if teams is None:
        return None
    return {
        team_id
        for team_id in teams
        if can(
            principal,
            Action.RELEASE_APPROVE,
            Release(deployment=Deployment(model=RegisteredModel(team_id=team_id))),
        )
    }


def releases_awaiting_approval(principal: Any) -> list[Release]:
    """Releases waiting for an approval this principal may give and has not given yet, longest
    waiting first. Who may approve is `release_actions`'s answer (the state from policy, the
    approver duty, four eyes and "a person decides" from permissions.can), asked of each
    candidate after the query keeps only the teams where the principal approves at all: at
    most one active release per deployment, each loaded with the team `can` reads, in one
    query whatever their number."""
    candidates = (
        release_list(principal)
        .filter(state=ReleaseState.AWAITING_APPROVAL)
        .exclude(approvals__user_id=getattr(principal, "pk", None))
        .order_by("created_at", "id")
    )
    teams = _approver_team_ids(principal)
    if teams is not None:
        candidates = candidates.filter(deployment__model__team_id__in=teams)
    return [r for r in candidates if "approve" in release_actions(principal, r)]


def releases_in_flight(principal: Any) -> QuerySet[Release]:
    """Active releases of the models of the teams the principal belongs to (a superuser's own
    teams too, not every team's), newest first."""
    return (
        release_list(principal)
        .filter(state__in=ACTIVE_STATES, deployment__model__team_id__in=list(team_roles(principal)))
        .order_by("-created_at", "-id")
    )
