"""A release's path as the stages a person reads at a glance: registry, approval, staging, rollback
rehearsal, production deploy, each traffic step (canary 20%, 50%, ...) with its analysis, and the
promotion; each done, running, waiting (and for whom), failed, not started or skipped, with the
recorded step that holds its evidence. Shaped from the frozen plan, the recorded steps and the
approvals the caller prefetched (selectors.release_detail): it never queries and never writes."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .engine import (
    AnalyzeStep,
    PlanStep,
    PromoteStep,
    StepAction,
    StepPhase,
    TrafficStep,
    steps_of,
)
from .models import ENDED_SHORT_STATES, ApprovalDecision, Release, ReleaseState, ReleaseStep
from .selectors import PathStep, release_path


class StageStatus(enum.StrEnum):
    DONE = "done"
    RUNNING = "running"
    WAITING = "waiting"  # for a person: an approver, or an operator of a paused release
    FAILED = "failed"
    PENDING = "pending"  # not reached yet
    SKIPPED = "skipped"  # not in the plan, or the release ended before it


STATUS_LABELS = {
    StageStatus.DONE: "Done",
    StageStatus.RUNNING: "Running",
    StageStatus.WAITING: "Waiting",
    StageStatus.FAILED: "Failed",
    StageStatus.PENDING: "Not started",
    StageStatus.SKIPPED: "Skipped",
}

# The recorded steps of a person's decision on a release (services.release_create/_decide).
DECISION_KINDS = frozenset({"create", "approval", "approve", "reject"})
# The recorded steps of a plan step (engine.loop records each by its action; the analysis its own).
PLAN_KINDS = frozenset({*(a.value for a in StepAction), "analysis"})


@dataclass(frozen=True)
class Stage:
    """One stage of the drawn path."""

    key: str  # unique on the page: "registry", "approval", "staging", "traffic-12", ...
    kind: str  # registry | approval | staging | rehearsal | deploy | traffic | promote
    label: str
    status: StageStatus
    detail: str
    steps: list[PathStep] = field(default_factory=list)
    # The newest recorded step of this stage (the timeline's anchor), and its gate, if any.
    evidence_step_id: int | None = None
    gate: str | None = None
    is_current: bool = False

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


def release_stages(release: Release) -> list[Stage]:
    """The stages of a release, in order (registry first, promotion last)."""
    plan = steps_of(release)
    path = release_path(release)
    steps = list(release.steps.all())
    stages = [_registry(release), _approval(release, steps)]
    started = _plan_started(release, steps)
    for kind, label, indexes in _groups(release, plan):
        stages.append(_plan_stage(release, plan, steps, path, started, kind, label, indexes))
    under_way = (StageStatus.RUNNING, StageStatus.WAITING)
    current = next((s for s in stages if s.status in under_way), None)
    if current is None and release.state in ENDED_SHORT_STATES | {ReleaseState.ROLLING_BACK}:
        current = next((s for s in stages if s.status == StageStatus.FAILED), None)
    return [replace(s, is_current=True) if s is current else s for s in stages]


# The fixed stages -------------------------------------------------------------------------------


def _registry(release: Release) -> Stage:
    version = release.version
    digest = version.artifact_digest.partition(":")[2][:12]
    return Stage(
        "registry",
        "registry",
        f"Registry: v{version.number}",
        StageStatus.DONE,
        f"v{version.number} in the registry ({version.get_status_display().lower()}), "
        f"artifact sha256:{digest}…",
    )


def _approval(release: Release, steps: list[ReleaseStep]) -> Stage:
    approvals = list(release.approvals.all())
    approved = [a for a in approvals if a.decision == ApprovalDecision.APPROVE]
    rejected = [a for a in approvals if a.decision == ApprovalDecision.REJECT]
    required = release.required_approvals
    count = f"{len(approved)} of {required} approval{'s' if required != 1 else ''}"
    by = ", ".join(a.user.get_username() for a in approved)
    team = release.deployment.model.team.name
    evidence = _last_id(s for s in steps if s.kind in DECISION_KINDS)
    if rejected:
        first = rejected[0]
        status = StageStatus.FAILED
        detail = f"Rejected by {first.user.get_username()}: {first.comment}".rstrip(": ")
    elif required == 0:
        status, detail = StageStatus.DONE, "No approval required for this risk tier"
    elif len(approved) >= required:
        status, detail = StageStatus.DONE, f"Approved by {by} ({count})"
    elif release.state == ReleaseState.AWAITING_APPROVAL:
        status = StageStatus.WAITING
        detail = (
            f"Waiting for approval by an approver of team {team} other than the author: {count}"
            + (f" (by {by})" if by else "")
        )
    elif release.state == ReleaseState.ABORTED:
        status, detail = StageStatus.FAILED, f"Aborted before it was approved ({count})"
    else:
        status, detail = StageStatus.DONE, count
    return Stage("approval", "approval", "Approval", status, detail, [], evidence, "approvals")


# The plan's stages ------------------------------------------------------------------------------


def _groups(release: Release, plan: list[PlanStep]) -> list[tuple[str, str, list[int]]]:
    """(kind, label, plan indexes) per stage: staging and rehearsal always (perhaps empty), then
    production cut at each traffic step, and the promotion on its own."""
    new = release.version.number
    staging = [i for i, s in enumerate(plan) if s.phase == StepPhase.STAGING]
    rehearsal = [i for i, s in enumerate(plan) if s.phase == StepPhase.REHEARSAL]
    groups: list[tuple[str, str, list[int]]] = [
        ("staging", "Staging: deploy and smoke test", staging),
        ("rehearsal", "Rollback rehearsal", rehearsal),
    ]
    production = [(i, s) for i, s in enumerate(plan) if s.phase == StepPhase.PRODUCTION]
    deploy: list[int] = []
    for index, step in production:
        if isinstance(step, TrafficStep):
            groups.append(("traffic", _traffic_label(step, new), [index]))
        elif isinstance(step, PromoteStep):
            groups.append(("promote", f"Production: v{new} stable", [index]))
        elif groups[-1][0] == "traffic":
            groups[-1][2].append(index)  # the analysis (or smoke test) of that traffic step
        else:
            deploy.append(index)
    if deploy:
        groups.insert(2, ("deploy", "Production: deploy and smoke test", deploy))
    return groups


def _traffic_label(step: TrafficStep, new: int) -> str:
    if step.mirror is not None:
        return f"Shadow: {step.mirror.percent}% mirrored to v{new}"
    weight = step.weights.get(new, 0)
    return f"Canary {weight}%" if weight < 100 else f"All traffic to v{new}"


def _plan_started(release: Release, steps: list[ReleaseStep]) -> bool:
    if release.state in (
        ReleaseState.AWAITING_APPROVAL,
        ReleaseState.APPROVED,
        ReleaseState.REJECTED,
    ):
        return False
    if release.state == ReleaseState.ABORTED:
        before_start = (ReleaseState.AWAITING_APPROVAL, ReleaseState.APPROVED)
        return not any(
            s.to_state == ReleaseState.ABORTED and s.from_state in before_start for s in steps
        )
    return True


def _plan_stage(
    release: Release,
    plan: list[PlanStep],
    steps: list[ReleaseStep],
    path: list[PathStep],
    started: bool,
    kind: str,
    label: str,
    indexes: list[int],
) -> Stage:
    key = kind if kind in ("staging", "rehearsal", "deploy") else f"{kind}-{indexes[0]}"
    stops = [path[i] for i in indexes]
    recorded = [s for s in steps if s.plan_index in indexes and s.kind in PLAN_KINDS]
    evidence = _last_id(recorded)
    gate = _gate_of(kind, indexes, plan)
    if not indexes:
        return Stage(key, kind, label, StageStatus.SKIPPED, "Not in this release's plan", stops)
    status, detail = _status(release, started, indexes, stops, recorded)
    return Stage(key, kind, label, status, detail, stops, evidence, gate)


def _gate_of(kind: str, indexes: list[int], plan: list[PlanStep]) -> str | None:
    """The name of the gate (selectors.release_gates) that judged this stage, if one did."""
    if kind in ("staging", "rehearsal"):
        return kind
    analyses = [i for i in indexes if isinstance(plan[i], AnalyzeStep)]
    return f"analysis-{analyses[0]}" if analyses else None


def _status(
    release: Release,
    started: bool,
    indexes: list[int],
    stops: list[PathStep],
    recorded: list[ReleaseStep],
) -> tuple[StageStatus, str]:
    at = release.step_index
    done_detail = _done_detail(stops, recorded)
    if release.state == ReleaseState.PROMOTED or (started and at > max(indexes)):
        return StageStatus.DONE, done_detail
    if not started or at < min(indexes):
        if release.is_terminal:
            return StageStatus.SKIPPED, f"The release was {release.get_state_display().lower()}"
        return StageStatus.PENDING, "Not started"
    now = stops[indexes.index(at)].label if at in indexes else ""
    if release.state in ENDED_SHORT_STATES or release.state == ReleaseState.ROLLING_BACK:
        back = f"v{release.from_version.number}" if release.from_version else "the last version"
        ending = (
            f"rolling back to {back}"
            if release.state == ReleaseState.ROLLING_BACK
            else release.get_state_display().lower()
        )
        return StageStatus.FAILED, f"{now}: {ending}. {release.status_reason}".strip()
    if release.state == ReleaseState.PAUSED:
        team = release.deployment.model.team.name
        return StageStatus.WAITING, (
            f"Paused at “{now}”: waiting for an operator of team {team} to resume, promote "
            f"or abort. {release.status_reason}"
        ).strip()
    return StageStatus.RUNNING, f"Now: {now}"


def _done_detail(stops: list[PathStep], recorded: list[ReleaseStep]) -> str:
    notes = [s.evidence.get("note") for s in recorded if s.kind == StepAction.NOTE]
    if notes and notes[0]:
        return str(notes[0])
    verdicts = [s.outcome for s in recorded if s.kind == "analysis"]
    if verdicts:
        return f"{len(stops)} steps done; analysis {verdicts[-1]}"
    return f"{len(stops)} step{'s' if len(stops) != 1 else ''} done"


def _last_id(steps: Iterable[ReleaseStep]) -> int | None:
    last = None
    for step in steps:
        last = step.pk
    return last
