"""The release engine: a level-triggered, idempotent reconcile loop (see ARCHITECTURE.md).

`reconcile(release_id)` reads the release, observes the runtime and takes at most the next step
of the release's frozen plan; `rollback_reconcile(rollback_id)` does the same for a rollback.
Every runtime call is idempotent (apply by name), and the plan position only moves after its
side effect succeeded, so a crash at any line, a duplicated task or a second worker never
double-applies or loses a step. One actor per release: the row is locked for the whole step.
This package never decides who may act (services.py does), never talks HTTP to users, and never
imports deployments.tasks (it enqueues its tasks by name).

Its modules, each importing only the ones above it here:
binding (runtime plumbing), locking (row locks), plan (typed steps, build_plan),
scheduling (enqueue by name), transitions (the transition table check, recorded steps),
steps (step actions, Outcome), rollback, loop (reconcile)."""

from .binding import can_serve, deployment_ref, runtime_of, version_spec
from .locking import lock_row
from .loop import notify_owners, reconcile, restore_staging
from .plan import (
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    PHASE_STATE,
    AnalyzeStep,
    AwaitReadyStep,
    DeployStep,
    NoteStep,
    PlanStep,
    PromoteStep,
    SmokeStep,
    StepAction,
    StepPhase,
    StepTarget,
    TrafficStep,
    build_plan,
    current_step,
    plan_to_json,
    progress_deadline,
    steps_of,
)
from .rollback import rollback_reconcile, start_rollback
from .scheduling import (
    POLL_SECONDS,
    RECONCILE_TASK,
    ROLLBACK_TASK,
    schedule_reconcile,
    schedule_rollback,
)
from .steps import Outcome, OutcomeKind, smoke_test
from .transitions import ENGINE, record_step, transition

__all__ = [
    "DEFAULT_PROGRESS_DEADLINE_SECONDS",
    "ENGINE",
    "PHASE_STATE",
    "POLL_SECONDS",
    "RECONCILE_TASK",
    "ROLLBACK_TASK",
    "AnalyzeStep",
    "AwaitReadyStep",
    "DeployStep",
    "NoteStep",
    "Outcome",
    "OutcomeKind",
    "PlanStep",
    "PromoteStep",
    "SmokeStep",
    "StepAction",
    "StepPhase",
    "StepTarget",
    "TrafficStep",
    "build_plan",
    "can_serve",
    "current_step",
    "deployment_ref",
    "lock_row",
    "notify_owners",
    "plan_to_json",
    "progress_deadline",
    "reconcile",
    "record_step",
    "restore_staging",
    "rollback_reconcile",
    "runtime_of",
    "schedule_reconcile",
    "schedule_rollback",
    "smoke_test",
    "start_rollback",
    "steps_of",
    "transition",
    "version_spec",
]
