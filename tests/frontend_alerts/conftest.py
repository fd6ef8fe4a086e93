"""Fixtures for the alert, on-call and incident pages: the deployment of the deployment pages
(`fraud-detector` in production, v2 stable after v1), an open alert on it, and a one-layer
schedule of the team."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.models import Alert, Schedule
from core import clock
from tests.deployments_api.conftest import (  # noqa: F401 (fixtures shared with the API tests)
    deployment,
    envs,
    model,
    production,
    versions,
)
from tests.factories import alert_of, layer_of, schedule_of


@pytest.fixture
def alert(team, deployment, people) -> Alert:  # type: ignore[no-untyped-def]  # noqa: F811
    """A critical burn-rate alert on the deployment, firing, assigned to the maintainer."""
    return alert_of(
        team,
        deployment=deployment,
        rule="slo_burn_rate",
        title="Error budget burning fast on fraud-detector",
        assignee=people["maintainer"],
        labels={"severity": "critical", "deployment": "fraud-detector"},
        evidence={"burn_rate": {"1h": 15.234567, "5m": 16.0}, "threshold": 14.4, "track": "stable"},
    )


@pytest.fixture
def schedule(team, people) -> Schedule:  # type: ignore[no-untyped-def]
    """Daily 24-hour shifts of the owner then the maintainer, the owner's shift begun an hour
    ago."""
    primary = schedule_of(team, name="primary")
    layer_of(
        primary,
        [people["owner"], people["maintainer"]],
        rotation_start=clock.now() - timedelta(hours=1),
        shift_hours=24,
        name="daily",
    )
    return primary
