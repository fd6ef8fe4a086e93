"""Alerts where the on-call already looks: the monitoring overview names each failing
deployment's worst open alert and its owner (one query for all of them), and the rollback
confirmation shows the deployment's rollback notes and links its open alerts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Deployment
from tests.factories import alert_of
from tests.monitoring_pages.conftest import demo_deployment, make_environment
from tests.monitoring_pages.test_pages import scraped
from tests.support.pages import html_of


@pytest.fixture
def local_env(db):  # type: ignore[no-untyped-def]
    return make_environment("demo", "local")


def test_the_overview_names_the_failing_deployments_alert_and_owner(
    browser_for, team, people, local_env
):
    failing = demo_deployment(team, local_env, {}, model_name="failing-one")
    scraped("failing-one", 50, 50)
    healthy = demo_deployment(team, local_env, {}, model_name="healthy-one")
    scraped("healthy-one", 100, 0)
    alert_of(team, deployment=failing, severity="warning", title="drift above threshold")
    worst = alert_of(
        team, deployment=failing, title="error rate burns the budget", assignee=people["owner"]
    )
    alert_of(team, deployment=healthy, title="a warning on the healthy one")
    html = html_of(browser_for("viewer"), "/monitoring/")
    card = html.split(f'id="mon-{failing.pk}"')[1].split("</article>")[0]
    assert f'<a href="/alerts/{worst.pk}/">error rate burns the budget</a>' in card
    assert "owned by <strong>owner</strong>" in card
    assert "drift above threshold" not in card  # only the worst one
    assert "a warning on the healthy one" not in html  # healthy deployments show none


def test_the_overview_says_when_a_failing_deployment_has_no_alert(browser_for, team, local_env):
    demo_deployment(team, local_env, {}, model_name="failing-one")
    scraped("failing-one", 50, 50)
    assert "No open alert yet." in html_of(browser_for("viewer"), "/monitoring/")


def test_the_overview_reads_alerts_in_one_query(browser_for, team, people, local_env):
    for name in ("failing-a", "failing-b", "failing-c"):
        deployment = demo_deployment(team, local_env, {}, model_name=name)
        scraped(name, 10, 90)
        alert_of(team, deployment=deployment, assignee=people["owner"])
    client = browser_for("viewer")
    with CaptureQueriesContext(connection) as queries:
        html = html_of(client, "/monitoring/")
    assert html.count("owned by <strong>owner</strong>") == 3
    alert_queries = [q for q in queries if 'FROM "alerts_alert"' in q["sql"]]
    assert len(alert_queries) == 1


def test_an_outsider_sees_no_alert_of_another_team(
    browser_for, team, people, other_team, local_env
):
    failing = demo_deployment(team, local_env, {}, model_name="failing-one")
    scraped("failing-one", 50, 50)
    alert_of(team, deployment=failing, title="secret trouble")
    assert "secret trouble" not in html_of(browser_for("outsider"), "/monitoring/")


def test_the_rollback_confirmation_shows_the_runbook_and_open_alerts(
    browser_for, deployment, alert, team
):
    Deployment.objects.filter(pk=deployment.pk).update(
        rollback_notes="1. Roll back.\n2. Tell #fraud-oncall."
    )
    alert_of(team, deployment=deployment, status="resolved", title="old and gone")
    html = html_of(browser_for("maintainer"), f"/deployments/{deployment.pk}/rollback/")
    runbook = html.split('id="runbook-title"')[1].split("</section>")[0]
    assert "1. Roll back.<br>2. Tell #fraud-oncall." in runbook
    assert f'<a href="/alerts/{alert.pk}/">Error budget burning fast on fraud-detector</a>' in html
    assert "old and gone" not in html
    assert "Roll back to v1</button>" in html


def test_the_rollback_confirmation_says_when_there_are_no_notes(browser_for, deployment):
    html = html_of(browser_for("maintainer"), f"/deployments/{deployment.pk}/rollback/")
    assert "No rollback notes for fraud-detector." in html
    assert 'id="open-alerts-title"' not in html
