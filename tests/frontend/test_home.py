"""The home page, "what needs me": per role it shows what waits for that person, and an
outsider never sees another team's items."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts import escalation
from alerts.models import EscalationTarget
from core import clock
from deployments.models import Approval, ReleaseState
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    alert_of,
    decided_item_of,
    deployment_of,
    environments,
    give_duty,
    layer_of,
    policy_of,
    put_in_state,
    queued_item_of,
    release_of,
    review_deployment_of,
    reviewer_in,
    schedule_of,
)
from tests.support.pages import html_of


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    """scorer in production (v1 stable), v2 registered."""
    _, production = environments()
    model = RegisteredModelFactory(name="scorer", team=team)
    v1 = ModelVersionFactory(model=model, number=1)
    ModelVersionFactory(model=model, number=2)
    return deployment_of(model, production, stable=v1)


@pytest.fixture
def awaiting(deployment, people):  # type: ignore[no-untyped-def]
    """A release of scorer v2 by the maintainer, awaiting approval."""
    release = release_of(deployment, deployment.model.versions.get(number=2), people["maintainer"])
    assert release.state == ReleaseState.AWAITING_APPROVAL
    return release


def section(html: str, key: str) -> str:
    start = html.index(f'id="home-{key}"')
    return html[start : html.index("</section>", start)]


def test_it_needs_a_session(db, client):
    assert client.get("/")["Location"] == "/login/?next=/"


def test_an_approver_sees_the_release_awaiting_their_approval(browser_for, people, team, awaiting):
    give_duty(people["viewer"], team, is_approver=True)
    html = html_of(browser_for("viewer"), "/")
    approvals = section(html, "approvals")
    assert f'href="/releases/{awaiting.pk}/"' in approvals
    assert "Releases awaiting your approval" in approvals and ">1</span>" in approvals
    assert 'href="/releases/?state=awaiting_approval"' in approvals


def test_the_author_and_people_without_the_duty_are_not_asked(browser_for, people, team, awaiting):
    give_duty(people["maintainer"], team, is_approver=True)  # the author: four eyes
    for who in ("maintainer", "owner"):
        approvals = section(html_of(browser_for(who), "/"), "approvals")
        assert f"/releases/{awaiting.pk}/" not in approvals
        assert "Nothing awaits your approval" in approvals


def test_a_release_i_already_approved_leaves_my_list(browser_for, people, team, awaiting):
    give_duty(people["viewer"], team, is_approver=True)
    Approval.objects.create(release=awaiting, user=people["viewer"], decision="approve")
    approvals = section(html_of(browser_for("viewer"), "/"), "approvals")
    assert f"/releases/{awaiting.pk}/" not in approvals


def test_the_release_shows_as_in_flight_on_my_teams_models(browser_for, awaiting):
    put_in_state(awaiting, ReleaseState.PROGRESSING)
    in_flight = section(html_of(browser_for("viewer"), "/"), "in-flight")
    assert f'href="/releases/{awaiting.pk}/"' in in_flight
    assert "Rolling out" in in_flight
    assert "state=progressing" in in_flight


def test_the_on_call_engineer_sees_the_alert_their_rotation_was_assigned(
    browser_for, people, team, deployment
):
    schedule = schedule_of(team)
    layer_of(schedule, [people["viewer"]], rotation_start=clock.now() - timedelta(hours=1))
    policy_of(team, [(EscalationTarget.SCHEDULE, schedule, 10)])
    alert = alert_of(team, deployment=deployment, title="p95 over the SLO")
    escalation.begin(alert, change="fired")
    alert.save()
    alert.refresh_from_db()
    assert alert.assignee == people["viewer"]
    alerts = section(html_of(browser_for("viewer"), "/"), "alerts")
    assert f'href="/alerts/{alert.pk}/"' in alerts and "p95 over the SLO" in alerts
    assert "<strong>you</strong>" in alerts
    assert 'href="/alerts/?view=mine"' in alerts


def test_the_on_call_duty_shows_the_team_s_open_alerts(browser_for, people, team, deployment):
    give_duty(people["viewer"], team, is_on_call=True)
    alert = alert_of(team, deployment=deployment, assignee=people["owner"])
    gone = alert_of(team, deployment=deployment, status="resolved", rule="over")
    alerts = section(html_of(browser_for("viewer"), "/"), "alerts")
    assert f'href="/alerts/{alert.pk}/"' in alerts
    assert f'href="/alerts/{gone.pk}/"' not in alerts


def test_a_reviewer_sees_items_and_appeals_they_may_take(browser_for, people, team):
    rita = reviewer_in(team, "rita")
    rob = reviewer_in(team, "rob")
    deployment = review_deployment_of(team)
    item = queued_item_of(deployment)
    appeal = decided_item_of(deployment, rob)
    appeal.level, appeal.status = 2, "pending"
    appeal.save()
    own_appeal = decided_item_of(deployment, rita)
    own_appeal.level, own_appeal.status = 2, "pending"
    own_appeal.save()
    client = browser_for("viewer")
    client.force_login(rita)
    reviews = section(html_of(client, "/"), "reviews")
    assert f"/reviews/{item.ref}/" in reviews
    assert f"/reviews/{appeal.ref}/" in reviews
    assert f"/reviews/{own_appeal.ref}/" not in reviews  # an appeal goes to another reviewer
    assert "1 first review and 1 appeal" in reviews


def test_someone_with_nothing_to_do_is_told_what_to_do_next(browser_for):
    html = html_of(browser_for("viewer"), "/")
    assert "Nothing waits for you right now." in html
    assert "Nothing awaits your approval." in section(html, "approvals")
    assert "start one from a deployment page" in section(html, "approvals")
    assert "No open alert is assigned to you" in section(html, "alerts")
    assert "No review item waits for you" in section(html, "reviews")
    assert "No release is running on your teams" in section(html, "in-flight")


def test_an_outsider_never_sees_another_team_s_items(browser_for, people, team, awaiting):
    give_duty(people["outsider"], people["outsider"].memberships.get().team, is_approver=True)
    alert_of(team, assignee=people["outsider"], title="secret alert")
    deployment = review_deployment_of(team, name="credit-scorer")
    queued_item_of(deployment)
    html = html_of(browser_for("outsider"), "/")
    assert f"/releases/{awaiting.pk}/" not in html
    assert "secret alert" not in html
    assert "/reviews/rv_" not in html
    assert "Nothing waits for you right now." in html


def test_the_nav_and_the_brand_lead_home(browser_for):
    html = html_of(browser_for("viewer"), "/")
    assert 'aria-current="page">Home</a>' in html
    assert '<a class="brand" href="/">' in html
