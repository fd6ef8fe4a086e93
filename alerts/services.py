"""Every write to a team's on-call set-up: schedules and their rotation layers, overrides,
escalation policies and their steps, notification channels. Each is one permission check
(`oncall.manage`), one transaction and one audit event; bad input is refused naming the field,
before anything is written. Never stores a URL or any other secret: a channel names the
environment variable that holds its URL."""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from core.errors import Conflict, NotFound, ValidationFailed
from identity import audit
from identity.audit import Actor
from identity.models import Team
from identity.permissions import Action, require

from .models import (
    EscalationPolicy,
    EscalationStep,
    EscalationTarget,
    LayerMember,
    NotificationChannel,
    Schedule,
    ScheduleLayer,
    ScheduleOverride,
)

MIN_WAIT_MINUTES, MAX_WAIT_MINUTES = 1, 24 * 60
MAX_REPEAT = 10
MAX_LAYERS = 20
MAX_LAYER_MEMBERS = 100
MAX_STEPS = 20
# The name of an environment variable, never its value: a webhook URL is a credential.
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")

SCHEDULE_FIELDS = ("name", "time_zone", "description")
POLICY_FIELDS = ("name", "repeat", "is_default", "description")
CHANNEL_FIELDS = ("name", "url_env", "is_active")


def _check_text(value: str, field: str, *, max_length: int, required: bool = True) -> str:
    if required and not value.strip():
        raise ValidationFailed("cannot be empty", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"at most {max_length} characters", field=field)
    return value.strip() if required else value


def check_time_zone(name: str, *, field: str = "time_zone") -> str:
    """A zoneinfo name (Europe/Paris, UTC): handoffs are computed in it, daylight saving too."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationFailed(
            f"{name!r} is not a time zone name (e.g. Europe/Paris, UTC)", field=field
        ) from None
    return name


def _check_aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed("give a time zone offset (e.g. +02:00 or Z)", field=field)
    return value


def _member(team_id: int, username: str, field: str) -> Any:
    """An active member of the team, by username, or a refusal naming the field."""
    user = (
        get_user_model()
        .objects.filter(username=username, is_active=True, memberships__team_id=team_id)
        .first()
    )
    if user is None:
        raise ValidationFailed(f"{username!r} is not an active member of the team", field=field)
    return user


def _save(row: Any, conflict: str) -> None:
    """Save in a savepoint: a concurrent request that took the same name (or made another
    policy the default) first is a 409, and the request's transaction stays usable."""
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        raise Conflict(conflict, field="name") from None


# Schedules ------------------------------------------------------------------------------------


@transaction.atomic
def schedule_create(
    *,
    actor: Actor,
    team: Team,
    name: str,
    time_zone: str = "UTC",
    description: str = "",
    layers: list[dict[str, Any]] | None = None,
) -> Schedule:
    require(actor.principal, Action.ONCALL_MANAGE, team)
    name = _check_text(name, "name", max_length=100)
    check_time_zone(time_zone)
    if Schedule.objects.filter(team=team, name=name).exists():
        raise Conflict(f"the team already has a schedule named {name!r}", field="name")
    schedule = Schedule(team=team, name=name, time_zone=time_zone, description=description)
    _save(schedule, f"the team already has a schedule named {name!r}")
    audit.record(
        actor=actor,
        action="schedule.create",
        target=schedule,
        after=audit.snapshot(schedule, SCHEDULE_FIELDS),
    )
    if layers:
        _replace_layers(schedule, layers)
    return schedule


@transaction.atomic
def schedule_update(
    *,
    actor: Actor,
    schedule: Schedule,
    name: str | None = None,
    time_zone: str | None = None,
    description: str | None = None,
) -> Schedule:
    require(actor.principal, Action.ONCALL_MANAGE, schedule)
    schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
    before = audit.snapshot(schedule, SCHEDULE_FIELDS)
    if name is not None:
        name = _check_text(name, "name", max_length=100)
        taken = Schedule.objects.filter(team_id=schedule.team_id, name=name)
        if taken.exclude(pk=schedule.pk).exists():
            raise Conflict(f"the team already has a schedule named {name!r}", field="name")
        schedule.name = name
    if time_zone is not None:
        schedule.time_zone = check_time_zone(time_zone)
    if description is not None:
        schedule.description = description
    schedule.save()
    audit.record(
        actor=actor,
        action="schedule.update",
        target=schedule,
        before=before,
        after=audit.snapshot(schedule, SCHEDULE_FIELDS),
    )
    return schedule


@transaction.atomic
def schedule_delete(*, actor: Actor, schedule: Schedule) -> None:
    """Refused while an escalation step points at it: an alert must never route to nothing."""
    require(actor.principal, Action.ONCALL_MANAGE, schedule)
    used_by = sorted(
        set(EscalationStep.objects.filter(schedule=schedule).values_list("policy__name", flat=True))
    )
    if used_by:
        raise Conflict(
            f"escalation policy {', '.join(repr(n) for n in used_by)} routes to this schedule: "
            "change its steps first",
            field="schedule",
        )
    audit.record(
        actor=actor,
        action="schedule.delete",
        target=schedule,
        before=audit.snapshot(schedule, SCHEDULE_FIELDS),
    )
    try:
        with transaction.atomic():
            schedule.delete()
    except ProtectedError:  # a step added by a concurrent request
        raise Conflict("an escalation policy routes to this schedule", field="schedule") from None


def _layer_time(value: Any, field: str) -> time | None:
    if value is None:
        return None
    if not isinstance(value, time):
        raise ValidationFailed("must be a time of day (HH:MM)", field=field)
    return value


def _check_layer(schedule: Schedule, index: int, raw: dict[str, Any]) -> dict[str, Any]:
    at = f"layers[{index}]"
    name = _check_text(str(raw.get("name", "")), f"{at}.name", max_length=100)
    position = raw.get("position", index)
    if not isinstance(position, int) or isinstance(position, bool) or not 0 <= position <= 1000:
        raise ValidationFailed("must be a whole number from 0 to 1000", field=f"{at}.position")
    start = raw.get("rotation_start")
    if not isinstance(start, datetime):
        raise ValidationFailed("the first handoff is required", field=f"{at}.rotation_start")
    _check_aware(start, f"{at}.rotation_start")
    shift_hours = raw.get("shift_hours", 168)
    if (
        not isinstance(shift_hours, int)
        or isinstance(shift_hours, bool)
        or not 1 <= shift_hours <= 24 * 366
    ):
        raise ValidationFailed("a shift lasts 1 hour to 366 days", field=f"{at}.shift_hours")
    active_from = _layer_time(raw.get("active_from"), f"{at}.active_from")
    active_until = _layer_time(raw.get("active_until"), f"{at}.active_until")
    if (active_from is None) != (active_until is None):
        missing = "active_until" if active_until is None else "active_from"
        raise ValidationFailed(
            "a daily window needs both active_from and active_until", field=f"{at}.{missing}"
        )
    if active_from is not None and active_from == active_until:
        raise ValidationFailed(
            "the daily window is empty: leave both out to cover the whole day",
            field=f"{at}.active_until",
        )
    ends_at = raw.get("ends_at")
    if ends_at is not None:
        _check_aware(ends_at, f"{at}.ends_at")
        if ends_at <= start:
            raise ValidationFailed("must be after rotation_start", field=f"{at}.ends_at")
    usernames = raw.get("members") or []
    if not isinstance(usernames, list) or not usernames:
        raise ValidationFailed("a layer needs at least one member", field=f"{at}.members")
    if len(usernames) > MAX_LAYER_MEMBERS:
        raise ValidationFailed(f"at most {MAX_LAYER_MEMBERS} members", field=f"{at}.members")
    members = [
        _member(schedule.team_id, str(username), f"{at}.members[{i}]")
        for i, username in enumerate(usernames)
    ]
    return {
        "name": name,
        "position": position,
        "rotation_start": start,
        "shift_hours": shift_hours,
        "active_from": active_from,
        "active_until": active_until,
        "ends_at": ends_at,
        "members": members,
    }


def _replace_layers(schedule: Schedule, layers: list[dict[str, Any]]) -> list[ScheduleLayer]:
    """Check every layer first, then replace them all: a bad member in the third layer leaves
    the first two as they were."""
    if len(layers) > MAX_LAYERS:
        raise ValidationFailed(f"at most {MAX_LAYERS} layers", field="layers")
    checked = [_check_layer(schedule, i, raw) for i, raw in enumerate(layers)]
    schedule.layers.all().delete()
    created = []
    for spec in checked:
        members = spec.pop("members")
        layer = ScheduleLayer.objects.create(schedule=schedule, **spec)
        LayerMember.objects.bulk_create(
            LayerMember(layer=layer, user=user, position=i) for i, user in enumerate(members)
        )
        created.append(layer)
    return created


def _layers_snapshot(schedule: Schedule) -> list[dict[str, Any]]:
    return [
        {
            "name": layer.name,
            "position": layer.position,
            "rotation_start": layer.rotation_start.isoformat(),
            "shift_hours": layer.shift_hours,
            "members": [m.user.get_username() for m in layer.members.all()],
        }
        for layer in schedule.layers.prefetch_related("members__user")
    ]


@transaction.atomic
def schedule_set_layers(
    *, actor: Actor, schedule: Schedule, layers: list[dict[str, Any]]
) -> list[ScheduleLayer]:
    """Replace the schedule's rotation layers in one call. Each layer: name, position (higher
    wins where it covers), rotation_start (an aware first handoff), shift_hours (>= 1), members
    (usernames of active team members, in turn order), and optionally a daily window
    active_from..active_until (local times, both or neither) and ends_at."""
    require(actor.principal, Action.ONCALL_MANAGE, schedule)
    schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
    before = _layers_snapshot(schedule)
    created = _replace_layers(schedule, layers)
    audit.record(
        actor=actor,
        action="schedule.set_layers",
        target=schedule,
        before={"layers": before},
        after={"layers": _layers_snapshot(schedule)},
    )
    return created


@transaction.atomic
def override_create(
    *,
    actor: Actor,
    schedule: Schedule,
    username: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
) -> ScheduleOverride:
    """Someone takes the whole schedule for a while (a swap, holiday cover)."""
    require(actor.principal, Action.ONCALL_MANAGE, schedule)
    _check_aware(starts_at, "starts_at")
    _check_aware(ends_at, "ends_at")
    if ends_at <= starts_at:
        raise ValidationFailed("must be after starts_at", field="ends_at")
    reason = _check_text(reason, "reason", max_length=2000, required=False)
    user = _member(schedule.team_id, username, "user")
    override = ScheduleOverride.objects.create(
        schedule=schedule,
        user=user,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by_label=actor.label,
    )
    audit.record(
        actor=actor,
        action="schedule.override_create",
        target=schedule,
        after={
            "override": override.pk,
            "user": user.get_username(),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        reason=reason,
    )
    return override


@transaction.atomic
def override_delete(*, actor: Actor, schedule: Schedule, override_id: int | str) -> None:
    require(actor.principal, Action.ONCALL_MANAGE, schedule)
    try:
        pk = int(override_id)
    except (TypeError, ValueError):
        raise NotFound(f"{override_id!r} is not an override id", field="override_id") from None
    override = (
        ScheduleOverride.objects.filter(schedule=schedule, pk=pk).select_related("user").first()
        if 0 < pk < 2**63
        else None
    )
    if override is None:
        raise NotFound(f"no override {override_id} on this schedule", field="override_id")
    audit.record(
        actor=actor,
        action="schedule.override_delete",
        target=override.schedule,
        before={
            "override": override.pk,
            "user": override.user.get_username(),
            "starts_at": override.starts_at.isoformat(),
            "ends_at": override.ends_at.isoformat(),
        },
    )
    override.delete()


# Escalation policies --------------------------------------------------------------------------


def _check_repeat(repeat: Any) -> int:
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 0 <= repeat <= MAX_REPEAT:
        raise ValidationFailed(f"repeat between 0 and {MAX_REPEAT} times", field="repeat")
    return repeat


def _check_step(team_id: int, index: int, raw: dict[str, Any]) -> dict[str, Any]:
    at = f"steps[{index}]"
    target = raw.get("target")
    if target not in EscalationTarget.values:
        raise ValidationFailed(f"one of {', '.join(EscalationTarget.values)}", field=f"{at}.target")
    wait = raw.get("wait_minutes", 15)
    if (
        not isinstance(wait, int)
        or isinstance(wait, bool)
        or not MIN_WAIT_MINUTES <= wait <= MAX_WAIT_MINUTES
    ):
        raise ValidationFailed(
            f"wait {MIN_WAIT_MINUTES} to {MAX_WAIT_MINUTES} minutes", field=f"{at}.wait_minutes"
        )
    schedule_id, username = raw.get("schedule"), raw.get("user")
    schedule = user = None
    if target == EscalationTarget.SCHEDULE:
        if schedule_id is None:
            raise ValidationFailed("name the schedule of this step", field=f"{at}.schedule")
        if (
            not isinstance(schedule_id, int)
            or isinstance(schedule_id, bool)
            or not 0 < schedule_id < 2**63
        ):
            raise ValidationFailed("a schedule id", field=f"{at}.schedule")
        schedule = Schedule.objects.filter(pk=schedule_id, team_id=team_id).first()
        if schedule is None:
            raise ValidationFailed(f"no schedule {schedule_id} in the team", field=f"{at}.schedule")
    elif schedule_id is not None:
        raise ValidationFailed("only a schedule step names a schedule", field=f"{at}.schedule")
    if target == EscalationTarget.USER:
        if not username:
            raise ValidationFailed("name the person of this step", field=f"{at}.user")
        user = _member(team_id, str(username), f"{at}.user")
    elif username:
        raise ValidationFailed("only a user step names a person", field=f"{at}.user")
    return {"target": target, "schedule": schedule, "user": user, "wait_minutes": wait}


def _check_steps(team_id: int, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not steps:
        raise ValidationFailed("a policy needs at least one step", field="steps")
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(f"at most {MAX_STEPS} steps", field="steps")
    return [_check_step(team_id, i, raw) for i, raw in enumerate(steps)]


def _write_steps(policy: EscalationPolicy, checked: list[dict[str, Any]]) -> None:
    policy.steps.all().delete()
    EscalationStep.objects.bulk_create(
        EscalationStep(policy=policy, position=i, **spec) for i, spec in enumerate(checked)
    )


def _steps_snapshot(policy: EscalationPolicy) -> list[dict[str, Any]]:
    return [
        {
            "target": step.target,
            "schedule": step.schedule_id,
            "user": step.user.get_username() if step.user else None,
            "wait_minutes": step.wait_minutes,
        }
        for step in policy.steps.select_related("user")
    ]


def _make_default(policy: EscalationPolicy) -> None:
    """One default policy per team: the previous default steps down in the same transaction
    (before this one is saved, so the one-default constraint never sees two)."""
    EscalationPolicy.objects.filter(team_id=policy.team_id, is_default=True).exclude(
        pk=policy.pk
    ).update(is_default=False)


@transaction.atomic
def policy_create(
    *,
    actor: Actor,
    team: Team,
    name: str,
    steps: list[dict[str, Any]],
    repeat: int = 0,
    is_default: bool = False,
    description: str = "",
) -> EscalationPolicy:
    """Steps: {target: schedule|user|team_owners, schedule: id, user: username,
    wait_minutes: 1..1440}, tried in order; `repeat` more rounds after the last step."""
    require(actor.principal, Action.ONCALL_MANAGE, team)
    name = _check_text(name, "name", max_length=100)
    _check_repeat(repeat)
    checked = _check_steps(team.pk, steps)
    if EscalationPolicy.objects.filter(team=team, name=name).exists():
        raise Conflict(f"the team already has a policy named {name!r}", field="name")
    policy = EscalationPolicy(
        team=team, name=name, repeat=repeat, is_default=is_default, description=description
    )
    if is_default:
        _make_default(policy)
    _save(policy, "another policy of the team was just saved with this name or as the default")
    _write_steps(policy, checked)
    audit.record(
        actor=actor,
        action="escalation_policy.create",
        target=policy,
        after={**audit.snapshot(policy, POLICY_FIELDS), "steps": _steps_snapshot(policy)},
    )
    return policy


@transaction.atomic
def policy_update(
    *,
    actor: Actor,
    policy: EscalationPolicy,
    name: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    repeat: int | None = None,
    is_default: bool | None = None,
    description: str | None = None,
) -> EscalationPolicy:
    """Change what is given; `steps`, when given, replace the policy's steps."""
    require(actor.principal, Action.ONCALL_MANAGE, policy)
    policy = EscalationPolicy.objects.select_for_update().get(pk=policy.pk)
    before = {**audit.snapshot(policy, POLICY_FIELDS), "steps": _steps_snapshot(policy)}
    if name is not None:
        name = _check_text(name, "name", max_length=100)
        taken = EscalationPolicy.objects.filter(team_id=policy.team_id, name=name)
        if taken.exclude(pk=policy.pk).exists():
            raise Conflict(f"the team already has a policy named {name!r}", field="name")
        policy.name = name
    if repeat is not None:
        policy.repeat = _check_repeat(repeat)
    checked = _check_steps(policy.team_id, steps) if steps is not None else None
    if description is not None:
        policy.description = description
    if is_default is not None:
        if is_default and not policy.is_default:
            _make_default(policy)
        policy.is_default = is_default
    _save(policy, "another policy of the team was just saved with this name or as the default")
    if checked is not None:
        _write_steps(policy, checked)
    audit.record(
        actor=actor,
        action="escalation_policy.update",
        target=policy,
        before=before,
        after={**audit.snapshot(policy, POLICY_FIELDS), "steps": _steps_snapshot(policy)},
    )
    return policy


@transaction.atomic
def policy_delete(*, actor: Actor, policy: EscalationPolicy) -> None:
    """Alerts that were routed by it keep their assignee; they escalate no further."""
    require(actor.principal, Action.ONCALL_MANAGE, policy)
    audit.record(
        actor=actor,
        action="escalation_policy.delete",
        target=policy,
        before={**audit.snapshot(policy, POLICY_FIELDS), "steps": _steps_snapshot(policy)},
    )
    policy.delete()


# Notification channels ------------------------------------------------------------------------


def check_url_env(value: str, *, field: str = "url_env") -> str:
    """The NAME of the environment variable that holds the webhook URL. The refusal never
    repeats the value: whoever pasted a URL here has just pasted a credential."""
    if not isinstance(value, str) or len(value) > 100 or not ENV_NAME.match(value):
        raise ValidationFailed(
            "give the name of the environment variable that holds the webhook URL "
            "(capitals, digits and _; e.g. ALERTS_SLACK_WEBHOOK_URL), never the URL itself",
            field=field,
        )
    return value


@transaction.atomic
def channel_create(
    *, actor: Actor, team: Team, name: str, url_env: str, is_active: bool = True
) -> NotificationChannel:
    require(actor.principal, Action.ONCALL_MANAGE, team)
    name = _check_text(name, "name", max_length=100)
    check_url_env(url_env)
    if NotificationChannel.objects.filter(team=team, name=name).exists():
        raise Conflict(f"the team already has a channel named {name!r}", field="name")
    try:
        with transaction.atomic():
            channel = NotificationChannel.objects.create(
                team=team, name=name, url_env=url_env, is_active=is_active
            )
    except IntegrityError:
        raise Conflict(f"the team already has a channel named {name!r}", field="name") from None
    audit.record(
        actor=actor,
        action="notification_channel.create",
        target=channel,
        after=audit.snapshot(channel, CHANNEL_FIELDS),
    )
    return channel


@transaction.atomic
def channel_update(
    *,
    actor: Actor,
    channel: NotificationChannel,
    name: str | None = None,
    url_env: str | None = None,
    is_active: bool | None = None,
) -> NotificationChannel:
    require(actor.principal, Action.ONCALL_MANAGE, channel)
    channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    before = audit.snapshot(channel, CHANNEL_FIELDS)
    if name is not None:
        name = _check_text(name, "name", max_length=100)
        taken = NotificationChannel.objects.filter(team_id=channel.team_id, name=name)
        if taken.exclude(pk=channel.pk).exists():
            raise Conflict(f"the team already has a channel named {name!r}", field="name")
        channel.name = name
    if url_env is not None:
        channel.url_env = check_url_env(url_env)
    if is_active is not None:
        channel.is_active = is_active
    channel.save()
    audit.record(
        actor=actor,
        action="notification_channel.update",
        target=channel,
        before=before,
        after=audit.snapshot(channel, CHANNEL_FIELDS),
    )
    return channel


@transaction.atomic
def channel_delete(*, actor: Actor, channel: NotificationChannel) -> None:
    require(actor.principal, Action.ONCALL_MANAGE, channel)
    audit.record(
        actor=actor,
        action="notification_channel.delete",
        target=channel,
        before=audit.snapshot(channel, CHANNEL_FIELDS),
    )
    channel.delete()
