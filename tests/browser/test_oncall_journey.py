"""The on-call engineer's journey on a phone (390 x 844), with a real Celery worker delivering
what the alert sends: an alert fires and the team's escalation policy assigns it to whoever its
rotation has on call; she finds it on her home page, acknowledges it, opens its incident, and
looks at the deployment and the rollback confirmation. Every page passes axe-core and none
scrolls sideways."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import transaction

from alerts import lifecycle
from alerts.models import Alert, AlertSource
from identity.audit import Actor
from tests.browser.browsing import PHONE, check_page
from tests.browser.conftest import member
from tests.deployments_api.conftest import (  # noqa: F401 (fixtures)
    deployment,
    envs,
    model,
    production,
    versions,
)
from tests.factories import escalation_policy_of, oncall_schedule_of

pytestmark = pytest.mark.slow

TITLE = "Error budget burning fast on fraud-detector"


@pytest.fixture
def fired(team: Any, deployment: Any, engine_worker: None) -> Alert:  # noqa: F811
    """Olive is on call (the one member of the rotation); a burn-rate alert fires on the
    deployment and the default policy's first step, the rotation, gets it."""
    olive = member(team, "olive", is_on_call=True)
    member(team, "sam")  # a teammate outside the rotation
    schedule = oncall_schedule_of(team, [olive])
    escalation_policy_of(team, [{"target": "schedule", "schedule": schedule.pk, "wait_minutes": 5}])
    with transaction.atomic():
        outcome = lifecycle.fire(
            lifecycle.Signal(
                team=team,
                source=AlertSource.RULE,
                fingerprint=f"slo_burn_rate:{deployment.pk}:stable",
                rule="slo_burn_rate",
                title=TITLE,
                severity="critical",
                summary="The 1 h burn rate is 15.2 (limit 14.4).",
                track="stable",
                model=deployment.model,
                deployment=deployment,
                evidence={"burn_rate": {"1h": 15.2, "5m": 16.0}, "threshold": 14.4},
            ),
            actor=Actor.system("tests"),
        )
    alert = outcome.alert
    assert alert.assignee == olive  # by the rotation, not by the test
    return alert


def test_on_call_acknowledges_an_alert_and_opens_its_incident_on_a_phone(
    fired: Alert, signed_in: Any
) -> None:
    from playwright.sync_api import expect

    page = signed_in("olive", viewport=PHONE)
    check_page(page, "home", phone=True)
    mine = page.get_by_role("region", name=re.compile("Alerts for you"))
    mine.get_by_role("link", name=TITLE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    check_page(page, "alert", phone=True)

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text(f"You acknowledged alert #{fired.pk}.")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled()
    fired.refresh_from_db()
    assert fired.status == "acknowledged" and fired.acknowledged_by.username == "olive"

    page.get_by_role("button", name="Open incident").click()
    expect(page.get_by_text(f"Incident opened from alert #{fired.pk}.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(TITLE)
    check_page(page, "incident", phone=True)
    fired.refresh_from_db()
    assert fired.incident is not None and page.url.endswith(f"/incidents/{fired.incident_id}/")

    # Back to the alert from its incident, then what the on-call engineer may do about it.
    page.get_by_role("main").get_by_role("link", name=re.compile(TITLE)).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    page.get_by_role("main").get_by_role("link", name=re.compile("Roll back to v1")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("to v1?")
    check_page(page, "rollback-confirm", phone=True)
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("region", name="Serving now")).to_be_visible()
    check_page(page, "deployment", phone=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("main").get_by_role("link", name=TITLE)).to_be_visible()
    check_page(page, "alerts", phone=True)
