"""Who owns an alert, and who hears of it next. `begin` assigns a new or reopened alert at the
instant it fires to the first step of the team's default policy that reaches somebody;
`escalate_due` (Celery beat) moves every unacknowledged alert whose wait is over to the next
step, round after round, `repeat` more times after the last. A step that reaches nobody (a
schedule gap) is skipped at once and the timeline says why; an alert goes to nobody only when
the team truly has nobody. Never commits for the caller; never sends anything itself (notify)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from core import clock
from identity.audit import Actor

from . import notify, targets
from .models import (
    Alert,
    AlertEventKind,
    AlertStatus,
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
)
from .timeline import event

ESCALATION = Actor.system("escalation")
BATCH = 500  # alerts moved by one beat run at most; the next run takes the rest
_ROUTING_FIELDS = [
    "assignee",
    "escalation_policy",
    "escalation_step",
    "escalation_round",
    "next_escalation_at",
    "updated_at",
]


@dataclass(frozen=True)
class _Reached:
    index: int
    round: int
    people: list[Any]


def begin(alert: Alert, *, change: str) -> None:
    """Assign a new or reopened alert to the first step of its team's default policy that
    reaches somebody now, then announce `change` to that step's people."""
    now = clock.now()
    policy = targets.default_policy(alert.team_id, now)
    steps = targets.steps_of(policy)
    alert.escalation_policy = policy
    alert.escalation_round = 0
    reached = _reach(alert, steps, _candidates(len(steps), 0, 0, 0), now)
    if reached is not None:
        step = steps[reached.index]
        alert.assignee = reached.people[0]
        alert.escalation_step = reached.index
        alert.next_escalation_at = now + timedelta(minutes=step.wait_minutes)
        alert.save(update_fields=_ROUTING_FIELDS)
        event(
            alert,
            AlertEventKind.ASSIGNED,
            ESCALATION,
            f"assigned to {_name(alert.assignee)}: step {reached.index + 1} of {len(steps)} "
            f"({_describe(step)}) of policy {policy.name}",
            _data(None, reached, policy),
        )
        notify.announce(alert, change, people=reached.people)
        return
    people, whom = targets.fallback_people(alert.team_id)
    # The policy's rounds still run (a gap may end): the wait is the last step's.
    alert.escalation_step = max(len(steps) - 1, 0)
    alert.next_escalation_at = now + timedelta(minutes=steps[-1].wait_minutes) if steps else None
    alert.assignee = people[0] if people else None
    alert.save(update_fields=_ROUTING_FIELDS)
    why = (
        f"no step of policy {policy.name} reaches anyone now"
        if steps and policy is not None
        else "the team has no escalation policy with steps"
    )
    if people:
        text = f"{why}: assigned to {_name(alert.assignee)} ({whom})"
    else:
        text = f"{why}, and the team has no active owner or on-call member: nobody to assign"
    event(
        alert,
        AlertEventKind.ASSIGNED,
        ESCALATION,
        text,
        {"to": _name(alert.assignee), "people": [_name(p) for p in people], "fallback": True},
    )
    notify.announce(alert, change, people=people)


def escalate_due(now: datetime | None = None) -> int:
    """Move every firing, unsilenced alert whose wait is over to its next step; returns how
    many moved. Each alert is taken in its own transaction under a row lock that a second beat
    run skips, so two runs never move one alert twice."""
    now = now or clock.now()
    moved = 0
    for pk in list(
        _due(now).order_by("next_escalation_at", "id").values_list("pk", flat=True)[:BATCH]
    ):
        with transaction.atomic():
            alert = _due(now).select_for_update(skip_locked=True).filter(pk=pk).first()
            if alert is not None and _step_up(alert, now):
                moved += 1
    return moved


def _due(now: datetime) -> QuerySet[Alert]:
    # Acknowledged and resolved alerts have left escalation; a silenced one waits its silence.
    return Alert.objects.filter(status=AlertStatus.FIRING, next_escalation_at__lte=now).exclude(
        silenced_until__gt=now
    )


def _step_up(alert: Alert, now: datetime) -> bool:
    policy = (
        targets.policy(alert.escalation_policy_id, now)
        if alert.escalation_policy_id is not None
        else None
    )
    steps = targets.steps_of(policy)
    repeat = policy.repeat if policy is not None else 0
    candidates = _candidates(len(steps), alert.escalation_step + 1, alert.escalation_round, repeat)
    reached = _reach(alert, steps, candidates, now)
    if reached is None:
        rounds = alert.escalation_round + 1
        alert.next_escalation_at = None
        alert.save(update_fields=_ROUTING_FIELDS)
        event(
            alert,
            AlertEventKind.ESCALATED,
            ESCALATION,
            f"escalation exhausted after {rounds} round{'s' if rounds != 1 else ''}; "
            f"stays with {_name(alert.assignee) or 'nobody'}",
            {"exhausted": True, "rounds": rounds, "to": _name(alert.assignee)},
        )
        return False
    before = alert.assignee
    step = steps[reached.index]
    alert.assignee = reached.people[0]
    alert.escalation_step = reached.index
    alert.escalation_round = reached.round
    alert.next_escalation_at = now + timedelta(minutes=step.wait_minutes)
    alert.save(update_fields=_ROUTING_FIELDS)
    event(
        alert,
        AlertEventKind.ESCALATED,
        ESCALATION,
        f"not acknowledged: escalated from {_name(before) or 'nobody'} to "
        f"{_name(alert.assignee)}, step {reached.index + 1} of {len(steps)} ({_describe(step)}), "
        f"round {reached.round + 1}",
        _data(before, reached, policy),
    )
    notify.announce(
        alert,
        f"escalated:{reached.round}:{reached.index}:{alert.reopened_count}",
        people=reached.people,
    )
    return True


def _candidates(count: int, index: int, round_: int, repeat: int) -> list[tuple[int, int]]:
    """The (step, round) pairs to try from (index, round_) on, each step at most once: every
    step reaches the same people at one instant, so a second lap would find nobody again."""
    return list(_walk(count, index, round_, repeat))[:count]


def _walk(count: int, index: int, round_: int, repeat: int) -> Iterator[tuple[int, int]]:
    while count:
        if index >= count:
            index, round_ = 0, round_ + 1
        if round_ > repeat:
            return
        yield index, round_
        index += 1


def _reach(
    alert: Alert,
    steps: list[EscalationStep],
    candidates: list[tuple[int, int]],
    now: datetime,
) -> _Reached | None:
    """The first candidate step that reaches somebody at `now`; each empty one is skipped with
    a timeline event that says why."""
    for n, (index, round_) in enumerate(candidates):
        people = targets.people_of(steps[index], alert.team_id, now)
        if people:
            return _Reached(index, round_, targets.unique(people))
        onward = f"; on to step {candidates[n + 1][0] + 1}" if n + 1 < len(candidates) else ""
        event(
            alert,
            AlertEventKind.ESCALATED,
            ESCALATION,
            f"step {index + 1} reaches nobody: {targets.why_empty(steps[index], now)}{onward}",
            {"skipped": True, "step": index, "round": round_},
        )
    return None


def _describe(step: EscalationStep) -> str:
    if step.target == EscalationTarget.SCHEDULE and step.schedule is not None:
        return f"on call on {step.schedule.name}"
    if step.target == EscalationTarget.USER and step.user is not None:
        return step.user.get_username()
    return "the team's owners"


def _data(before: Any, reached: _Reached, policy: EscalationPolicy | None) -> dict[str, Any]:
    return {
        "from": _name(before),
        "to": _name(reached.people[0]),
        "people": [_name(p) for p in reached.people],
        "step": reached.index,
        "round": reached.round,
        "policy": policy.name if policy is not None else None,
    }


def _name(user: Any) -> str | None:
    return user.get_username() if user is not None else None
