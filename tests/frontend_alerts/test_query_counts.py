"""Query counts of the alert, on-call and incident pages stay flat as data grows (1 object vs
50) and within the numbers recorded in tests/query_counts.json (the ratchet of every page).
After a change that lowers a count, record it with UPDATE_QUERY_COUNTS=1 (this file only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from alerts.models import (
    Alert,
    AlertEvent,
    AlertEventKind,
    Delivery,
    EscalationPolicy,
    Incident,
    IncidentEvent,
    Schedule,
)
from core import clock
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environments,
    incident_of,
    layer_of,
    override_of,
    policy_of,
    schedule_of,
)
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries


def base(ctx: dict[str, Any]) -> Any:
    """The production deployment of `scorer` (v2 stable after v1), built once per test."""
    if "deployment" not in ctx:
        _, production = environments()
        model = RegisteredModelFactory(name="scorer", team=ctx["team"])
        v1, v2 = (ModelVersionFactory(model=model, number=n) for n in (1, 2))
        ctx["deployment"] = deployment_of(model, production, stable=v2, previous=v1)
    return ctx["deployment"]


def _people(ctx: dict[str, Any]) -> list[Any]:
    return [ctx["people"][who] for who in ("owner", "maintainer", "viewer")]


def grow_alerts(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    people = _people(ctx)
    for i in range(Alert.objects.count(), n):
        alert = alert_of(
            ctx["team"], deployment=deployment, assignee=ctx["people"]["owner"], rule=f"r{i}"
        )
        alert.acknowledged_by = people[i % 3]
        alert.silenced_until = clock.now() + timedelta(hours=1) if i % 2 else None
        alert.save()
    return "/alerts/"


def grow_alert_detail(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    if "alert" not in ctx:
        ctx["alert"] = alert_of(ctx["team"], deployment=deployment, evidence={"burn": 15.0})
    alert, people = ctx["alert"], _people(ctx)
    for i in range(alert.deliveries.count(), n):
        AlertEvent.objects.create(
            alert=alert,
            kind=AlertEventKind.NOTE,
            actor_label=people[i % 3].username,
            actor=people[i % 3],
            text=f"note {i}",
            data={"n": i},
        )
        Delivery.objects.create(
            alert=alert,
            change=f"fired:{i}",
            kind="email",
            recipient=f"user:{people[i % 3].pk}:{i}",
            user=people[i % 3],
            status="sent",
        )
    return f"/alerts/{alert.pk}/"


def grow_schedules(ctx: dict[str, Any], n: int) -> str:
    people, now = _people(ctx), clock.now()
    for i in range(Schedule.objects.count(), n):
        schedule = schedule_of(ctx["team"], name=f"schedule-{i:03d}", time_zone="Europe/Paris")
        layer_of(schedule, people[:2], rotation_start=now - timedelta(hours=i), shift_hours=12)
        override_of(schedule, people[2], now + timedelta(hours=1), now + timedelta(hours=3))
    return "/oncall/"


def grow_schedule_detail(ctx: dict[str, Any], n: int) -> str:
    people, now = _people(ctx), clock.now()
    if "schedule" not in ctx:
        ctx["schedule"] = schedule_of(ctx["team"], name="primary", time_zone="America/New_York")
    schedule = ctx["schedule"]
    for i in range(schedule.layers.count(), n):
        layer_of(
            schedule,
            people,
            rotation_start=now - timedelta(hours=i),
            shift_hours=24 * (1 + i % 3),
            position=i,
            name=f"layer-{i:03d}",
        )
        start = now + timedelta(hours=3 * i)
        override_of(schedule, people[i % 3], start, start + timedelta(hours=1))
    return f"/oncall/schedules/{schedule.pk}/"


def grow_policies(ctx: dict[str, Any], n: int) -> str:
    if "schedule" not in ctx:
        ctx["schedule"] = schedule_of(ctx["team"], name="primary")
    for i in range(EscalationPolicy.objects.count(), n):
        policy_of(
            ctx["team"],
            [("schedule", ctx["schedule"], 5), ("user", _people(ctx)[i % 3], 10)],
            name=f"policy-{i:03d}",
            is_default=False,
        )
    return "/oncall/policies/"


def grow_incidents(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    for i in range(Incident.objects.count(), n):
        incident_of(ctx["team"], deployment=deployment, title=f"incident {i}")
    return "/incidents/"


def grow_incident_detail(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    if "incident" not in ctx:
        first = alert_of(ctx["team"], deployment=deployment, rule="first")
        ctx["incident"] = incident_of(ctx["team"], alert=first)
    incident = ctx["incident"]
    for i in range(IncidentEvent.objects.filter(incident=incident, kind="note").count(), n):
        IncidentEvent.objects.create(
            incident=incident, kind="note", actor_label="owner", text=f"note {i}"
        )
        alert_of(ctx["team"], deployment=deployment, rule=f"later-{i}", incident=incident)
    return f"/incidents/{incident.pk}/"


PAGES: dict[str, Callable[[dict[str, Any], int], str]] = {
    "alerts": grow_alerts,
    "alert-detail": grow_alert_detail,
    "schedules": grow_schedules,
    "schedule-detail": grow_schedule_detail,
    "escalation-policies": grow_policies,
    "incidents": grow_incidents,
    "incident-detail": grow_incident_detail,
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_query_count_is_flat_and_within_the_ratchet(page, browser_for, team, people):
    ctx: dict[str, Any] = {"team": team, "people": people}
    client = browser_for("owner")
    small = count_queries(client, PAGES[page](ctx, SMALL))
    large = count_queries(client, PAGES[page](ctx, LARGE))
    check_ratchet(page, small, large)
