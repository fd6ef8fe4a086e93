"""The alerts, on-call and incidents API endpoints keep a flat query count as data grows (1 vs 50
objects), within the numbers recorded in tests/query_counts.json, the ratchet every page and API
shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from alerts import incidents
from alerts.models import Alert, EscalationPolicy, Incident, Schedule, ScheduleOverride
from core import clock
from deployments.models import Release, ReleaseStep, Rollback
from tests.factories import (
    SYSTEM,
    ModelVersionFactory,
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environment_of,
    escalation_policy_of,
    incident_of,
    oncall_schedule_of,
    release_of,
)
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries


def _alerts(ctx: dict[str, Any], n: int) -> str:
    for i in range(Alert.objects.count(), n):
        alert = alert_of(
            ctx["team"], deployment=ctx["deployment"], rule=f"r{i}", assignee=ctx["people"][i % 3]
        )
        Alert.objects.filter(pk=alert.pk).update(
            status="acknowledged", acknowledged_by=ctx["people"][(i + 1) % 3]
        )
    return "/api/v1/alerts/"


def _alert_detail(ctx: dict[str, Any], n: int) -> str:
    if "alert" not in ctx:
        ctx["alert"] = alert_of(ctx["team"], deployment=ctx["deployment"], rule="one")
    alert = ctx["alert"]
    for i in range(alert.events.count(), n):
        alert.events.create(kind="note", actor_label="owner", text=f"{i}")
        alert.deliveries.create(
            change=f"note:{i}", kind="email", recipient="user:1", user=ctx["people"][i % 3]
        )
    return f"/api/v1/alerts/{alert.pk}/"


def _schedules(ctx: dict[str, Any], n: int) -> str:
    for i in range(Schedule.objects.count(), n):
        schedule = oncall_schedule_of(ctx["team"], ctx["people"], name=f"s-{i:02d}")
        ScheduleOverride.objects.create(
            schedule=schedule,
            user=ctx["people"][i % 3],
            starts_at=clock.now(),
            ends_at=clock.now() + timedelta(hours=4),
        )
    return "/api/v1/schedules/"


def _policies(ctx: dict[str, Any], n: int) -> str:
    for i in range(EscalationPolicy.objects.count(), n):
        schedule = oncall_schedule_of(ctx["team"], ctx["people"], name=f"p-{i:02d}")
        escalation_policy_of(
            ctx["team"],
            [
                {"target": "schedule", "schedule": schedule.pk},
                {"target": "user", "user": ctx["people"][i % 3].username},
                {"target": "team_owners"},
            ],
            name=f"p-{i:02d}",
            is_default=False,
        )
    return "/api/v1/escalation-policies/"


def _incidents(ctx: dict[str, Any], n: int) -> str:
    for i in range(Incident.objects.count(), n):
        alert = alert_of(
            ctx["team"], deployment=ctx["deployment"], rule=f"i{i}", assignee=ctx["people"][i % 3]
        )
        incident_of(ctx["team"], alert=alert)
    return "/api/v1/incidents/"


def _incident_detail(ctx: dict[str, Any], n: int) -> str:
    """Everything the timeline gathers grows: notes, alerts of the deployment, releases with
    their decisive steps, rollbacks."""
    deployment = ctx["deployment"]
    if "incident" not in ctx:
        alert = alert_of(ctx["team"], deployment=deployment, rule="first")
        ctx["incident"] = incident_of(ctx["team"], alert=alert)
    incident = ctx["incident"]
    for i in range(Release.objects.count(), n):
        alert_of(ctx["team"], deployment=deployment, rule=f"more-{i}")
        incidents.add_note(actor=SYSTEM, incident=incident, text=f"note {i}")
        release = release_of(deployment, ctx["version"], ctx["people"][1])
        ReleaseStep.objects.create(
            release=release, kind="analysis", outcome="fail", actor_label="e"
        )
        Release.objects.filter(pk=release.pk).update(state="failed", finished_at=clock.now())
        Rollback.objects.create(
            deployment=deployment, to_version=ctx["version"], actor_label="maintainer"
        )
    return f"/api/v1/incidents/{incident.pk}/"


ENDPOINTS: dict[str, Callable[[dict[str, Any], int], str]] = {
    "GET /api/v1/alerts/": _alerts,
    "GET /api/v1/alerts/{id}/": _alert_detail,
    "GET /api/v1/schedules/": _schedules,
    "GET /api/v1/escalation-policies/": _policies,
    "GET /api/v1/incidents/": _incidents,
    "GET /api/v1/incidents/{id}/": _incident_detail,
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_the_query_count_does_not_grow_with_the_data(endpoint, client_for, team, people):
    model = RegisteredModelFactory(team=team, name="fraud-detector")
    ctx: dict[str, Any] = {
        "team": team,
        "people": [people["owner"], people["maintainer"], people["viewer"]],
        "deployment": deployment_of(model, environment_of("production")),
        "version": ModelVersionFactory(model=model, number=1),
    }
    client = client_for("owner")
    url = ENDPOINTS[endpoint](ctx, SMALL)
    count_queries(client, url)  # warm per-process caches (content types), as a server has them
    small = count_queries(client, url)
    url = ENDPOINTS[endpoint](ctx, LARGE)
    large = count_queries(client, url)
    check_ratchet(endpoint, small, large)
