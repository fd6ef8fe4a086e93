"""A release's plan: the typed steps it is made of, and `build_plan`, which freezes them when the
release is asked for. Plain values: never touches the runtime or the database. Release.plan stores
each step's to_json(), and from_json() must keep reading every plan stored so far."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from typing import Any, ClassVar

from ..models import Release, ReleaseState, Strategy
from ..runtime.base import Mirror, Track, TrafficSplit
from ..tracks import release_track

DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


class StepPhase(enum.StrEnum):
    STAGING = "staging"
    REHEARSAL = "rehearsal"
    PRODUCTION = "production"


class StepAction(enum.StrEnum):
    DEPLOY = "deploy"
    AWAIT_READY = "await_ready"
    TRAFFIC = "traffic"
    SMOKE = "smoke"
    PROMOTE = "promote"
    ANALYZE = "analyze"
    NOTE = "note"


class StepTarget(enum.StrEnum):
    """The deployment a step acts on."""

    STAGING = "staging"  # the same model's deployment in the environment's staging environment
    TARGET = "target"  # the release's own deployment


# The release state each phase of a plan runs in.
PHASE_STATE = {
    StepPhase.STAGING: ReleaseState.STAGING,
    StepPhase.REHEARSAL: ReleaseState.REHEARSAL,
    StepPhase.PRODUCTION: ReleaseState.PROGRESSING,
}


def progress_deadline(params: Mapping[str, Any]) -> int:
    """How long, in seconds, any wait of a release or a rollback may last (a version becoming
    ready, a traffic change reaching the data plane): the strategy's progress_deadline_seconds."""
    return int(params.get("progress_deadline_seconds", DEFAULT_PROGRESS_DEADLINE_SECONDS))


# Steps ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PlanStep:
    """One step of a frozen plan: its phase, the deployment it acts on and explicit version
    numbers, so that replaying it is exact. Each action is a subclass with its own fields."""

    action: ClassVar[StepAction]
    phase: StepPhase
    target: StepTarget = StepTarget.TARGET

    def to_json(self) -> dict[str, Any]:
        """The step as Release.plan stores it (and the API shows it)."""
        data: dict[str, Any] = {
            "phase": self.phase.value,
            "action": self.action.value,
            "target": self.target.value,
        }
        for f in fields(self):
            if f.name in data:
                continue
            value = getattr(self, f.name)
            if f.default is not MISSING and value == f.default:
                continue  # an optional key is absent when unset, as in every plan stored so far
            data[f.name] = _json(value)
        return data

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> PlanStep:
        """The typed step of one entry of Release.plan, as stored now or by the untyped engine."""
        kind = _STEP_TYPES[StepAction(data["action"])]
        return kind._decode(
            data,
            phase=StepPhase(data["phase"]),
            target=StepTarget(data.get("target", StepTarget.TARGET)),
        )

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> PlanStep:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class DeployStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.DEPLOY
    version: int
    track: Track

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> DeployStep:
        return cls(**common, version=int(data["version"]), track=Track(data["track"]))


@dataclass(frozen=True, kw_only=True)
class AwaitReadyStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.AWAIT_READY
    version: int
    deadline_seconds: int | None = None  # None: the deployment's configured progress deadline

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> AwaitReadyStep:
        return cls(
            **common,
            version=int(data["version"]),
            deadline_seconds=_int_or_none(data.get("deadline_seconds")),
        )


@dataclass(frozen=True, kw_only=True)
class TrafficStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.TRAFFIC
    weights: dict[int, int]  # version -> percent of live traffic
    mirror: Mirror | None = None
    # Plans stored before traffic steps carried a deadline read None: the deployment's
    # configured progress deadline.
    deadline_seconds: int | None = None

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> TrafficStep:
        mirror = data.get("mirror")
        return cls(
            **common,
            weights={int(v): int(w) for v, w in data["weights"].items()},
            mirror=Mirror(int(mirror["version"]), int(mirror["percent"])) if mirror else None,
            deadline_seconds=_int_or_none(data.get("deadline_seconds")),
        )

    def split(self) -> TrafficSplit:
        return TrafficSplit(weights=dict(self.weights), mirror=self.mirror)


@dataclass(frozen=True, kw_only=True)
class SmokeStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.SMOKE
    version: int
    routed: bool = False  # through the entry point, not to the version directly

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> SmokeStep:
        return cls(**common, version=int(data["version"]), routed=bool(data.get("routed")))


@dataclass(frozen=True, kw_only=True)
class PromoteStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.PROMOTE
    version: int
    previous: int | None  # what the target served before: where a failed staging goes back

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> PromoteStep:
        return cls(
            **common, version=int(data["version"]), previous=_int_or_none(data.get("previous"))
        )


@dataclass(frozen=True, kw_only=True)
class AnalyzeStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.ANALYZE
    stable: int
    canary: int
    weight: int
    interval_seconds: float
    warmup_seconds: float
    min_requests: int
    max_cost_increase: float | None
    shadow: bool = False

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> AnalyzeStep:
        max_cost = data.get("max_cost_increase")
        return cls(
            **common,
            stable=int(data["stable"]),
            canary=int(data["canary"]),
            weight=int(data["weight"]),
            interval_seconds=float(data["interval_seconds"]),
            warmup_seconds=float(data.get("warmup_seconds", 0)),
            min_requests=int(data.get("min_requests", 0)),
            max_cost_increase=None if max_cost is None else float(max_cost),
            shadow=bool(data.get("shadow")),
        )


@dataclass(frozen=True, kw_only=True)
class NoteStep(PlanStep):
    action: ClassVar[StepAction] = StepAction.NOTE
    note: str

    @classmethod
    def _decode(cls, data: Mapping[str, Any], **common: Any) -> NoteStep:
        return cls(**common, note=str(data.get("note", "")))


_STEP_TYPES: dict[StepAction, type[PlanStep]] = {
    kind.action: kind
    for kind in (
        DeployStep,
        AwaitReadyStep,
        TrafficStep,
        SmokeStep,
        PromoteStep,
        AnalyzeStep,
        NoteStep,
    )
}


def _json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}  # JSON keys are strings
    return value


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def plan_to_json(plan: Sequence[PlanStep]) -> list[dict[str, Any]]:
    return [step.to_json() for step in plan]


def steps_of(release: Release) -> list[PlanStep]:
    """The release's frozen plan, typed."""
    return [PlanStep.from_json(data) for data in release.plan]


def current_step(release: Release) -> PlanStep | None:
    """The step the release is at, or None once it is past its last one."""
    if release.step_index < len(release.plan):
        return PlanStep.from_json(release.plan[release.step_index])
    return None


# Building a plan ------------------------------------------------------------------------------


def build_plan(
    *,
    strategy: str,
    params: dict[str, Any],
    new: int,
    old: int | None,
    staging_old: int | None,
    has_staging: bool,
) -> list[PlanStep]:
    """The frozen list of steps of a release (store it with plan_to_json)."""
    deadline = progress_deadline(params)
    plan: list[PlanStep] = []

    def bring_up(phase: StepPhase, target: StepTarget, track: Track) -> None:
        plan.append(DeployStep(phase=phase, target=target, version=new, track=track))
        plan.append(
            AwaitReadyStep(phase=phase, target=target, version=new, deadline_seconds=deadline)
        )

    def traffic(
        phase: StepPhase,
        weights: dict[int, int],
        target: StepTarget = StepTarget.TARGET,
        mirror: Mirror | None = None,
    ) -> None:
        plan.append(
            TrafficStep(
                phase=phase,
                target=target,
                weights=weights,
                mirror=mirror,
                deadline_seconds=deadline,
            )
        )

    staging, rehearsal, production = StepPhase.STAGING, StepPhase.REHEARSAL, StepPhase.PRODUCTION
    on_staging = StepTarget.STAGING
    if has_staging:
        bring_up(staging, on_staging, Track.STABLE)
        traffic(staging, {new: 100}, on_staging)
        plan.append(SmokeStep(phase=staging, target=on_staging, version=new))
        plan.append(
            PromoteStep(phase=staging, target=on_staging, version=new, previous=staging_old)
        )
        if staging_old is not None:
            # Rollback rehearsal: go back, prove the old version serves, then forward again.
            traffic(rehearsal, {staging_old: 100}, on_staging)
            plan.append(
                SmokeStep(phase=rehearsal, target=on_staging, version=staging_old, routed=True)
            )
            traffic(rehearsal, {new: 100}, on_staging)
            plan.append(SmokeStep(phase=rehearsal, target=on_staging, version=new, routed=True))
        else:
            plan.append(
                NoteStep(
                    phase=rehearsal,
                    target=on_staging,
                    note="no earlier version in staging: nothing to rehearse a rollback to",
                )
            )

    # The new version's track in production: the one rule the monitoring pages read too.
    track = release_track(strategy, replaces_a_version=old is not None)
    interval = float(params.get("analysis_interval_seconds", 0))
    warmup = float(params.get("analysis_warmup_seconds", 0))
    min_requests = int(params.get("min_requests", 0))
    max_cost = params.get("max_cost_increase")

    def analyze(
        stable: int, weight: int, *, shadow: bool = False, window: float = interval
    ) -> None:
        plan.append(
            AnalyzeStep(
                phase=production,
                stable=stable,
                canary=new,
                weight=weight,
                shadow=shadow,
                interval_seconds=window,
                warmup_seconds=warmup,
                min_requests=min_requests,
                max_cost_increase=None if max_cost is None else float(max_cost),
            )
        )

    bring_up(production, StepTarget.TARGET, track)
    plan.append(SmokeStep(phase=production, version=new))
    if old is None:
        # First release of this deployment: nothing to compare with or fall back to.
        traffic(production, {new: 100})
        plan.append(PromoteStep(phase=production, version=new, previous=None))
        return plan
    if strategy == Strategy.CANARY:
        for weight in params.get("steps", [5, 25, 50, 100]):
            weight = int(weight)
            traffic(production, {old: 100 - weight, new: weight} if weight < 100 else {new: 100})
            if weight < 100 and interval > 0:
                analyze(old, weight)
    elif strategy == Strategy.SHADOW:
        percent = int(params.get("mirror_percent", 50))
        traffic(production, {old: 100}, mirror=Mirror(version=new, percent=percent))
        analyze(old, 0, shadow=True, window=max(interval, 1.0))
        traffic(production, {new: 100})
    else:  # blue-green (the new colour is up at full size: switch), rolling (no analysis)
        traffic(production, {new: 100})
    plan.append(PromoteStep(phase=production, version=new, previous=old))
    return plan
