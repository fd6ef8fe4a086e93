"""/alerts/: "my alerts" by default (assigned to me, or of a team I am on call for), my teams'
open and resolved alerts, and the triage list; only alerts of my teams, with empty states that
say what to do next."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from core import clock
from tests.factories import alert_of, give_duty
from tests.support.pages import html_of


def test_my_alerts_are_those_assigned_to_me(browser_for, alert, team, people):
    alert_of(team, title="someone else's", assignee=people["owner"])
    html = html_of(browser_for("maintainer"), "/alerts/")
    assert f'href="/alerts/{alert.pk}/"' in html and "Error budget burning fast" in html
    assert "someone else&#x27;s" not in html
    row = html.split(f'href="/alerts/{alert.pk}/"')[1].split("</tr>")[0]
    for cell in ("fraud-detector", "production", "maintainer", "Firing"):
        assert cell in row
    assert '<span class="badge severity-critical">Critical</span>' in html


def test_on_call_duty_makes_the_team_alerts_mine(browser_for, alert, team, people):
    client = browser_for("viewer")
    assert "Nothing needs you" in html_of(client, "/alerts/")
    give_duty(people["viewer"], team, is_on_call=True)
    assert f'href="/alerts/{alert.pk}/"' in html_of(client, "/alerts/")


def test_a_resolved_alert_leaves_my_list_for_the_resolved_tab(browser_for, team, people):
    gone = alert_of(
        team,
        title="it healed",
        assignee=people["maintainer"],
        status="resolved",
        resolved_at=clock.now(),
    )
    client = browser_for("maintainer")
    assert f'href="/alerts/{gone.pk}/"' not in html_of(client, "/alerts/")
    assert f'href="/alerts/{gone.pk}/"' not in html_of(client, "/alerts/?view=team")
    html = html_of(client, "/alerts/?view=resolved")
    assert f'href="/alerts/{gone.pk}/"' in html and "Resolved" in html


def test_team_tab_shows_every_open_alert_of_my_teams_worst_first(browser_for, alert, team):
    info = alert_of(team, title="just so you know", severity="info")
    html = html_of(browser_for("viewer"), "/alerts/?view=team")
    assert html.index(f'href="/alerts/{alert.pk}/"') < html.index(f'href="/alerts/{info.pk}/"')
    assert '<a href="/alerts/?view=team" aria-current="page">' in html


def test_triage_tab_shows_alerts_that_named_no_deployment(browser_for, alert, team):
    stray = alert_of(
        team,
        title="DiskFull on node-7",
        needs_triage=True,
        source="alertmanager",
        labels={"alertname": "DiskFull", "instance": "node-7"},
    )
    html = html_of(browser_for("viewer"), "/alerts/?view=triage")
    assert f'href="/alerts/{stray.pk}/"' in html and "needs triage" in html
    assert f'href="/alerts/{alert.pk}/"' not in html


def test_a_silenced_alert_says_until_when(browser_for, alert):
    until = clock.now() + timedelta(hours=2)
    type(alert).objects.filter(pk=alert.pk).update(silenced_until=until)
    html = html_of(browser_for("maintainer"), "/alerts/")
    row = html.split(f'href="/alerts/{alert.pk}/"')[1].split("</tr>")[0]
    assert "silenced until" in row and f"{until:%Y-%m-%d %H:%M} UTC</time>" in row


@pytest.mark.parametrize("view", ["", "?view=team", "?view=resolved", "?view=triage"])
def test_an_outsider_sees_none_of_another_teams_alerts(browser_for, alert, team, view):
    alert_of(team, needs_triage=True, assignee=None)
    alert_of(team, status="resolved", resolved_at=clock.now())
    html = html_of(browser_for("outsider"), f"/alerts/{view}")
    assert not re.search(r'href="/alerts/\d+/"', html)
    assert 'class="table' not in html
    assert 'class="empty"' in html


@pytest.mark.parametrize(
    ("view", "hint"),
    [
        ("", 'href="/alerts/?view=team"'),
        ("?view=team", 'href="/monitoring/"'),
        ("?view=resolved", "No alert of your teams has been resolved yet."),
        ("?view=triage", "Nothing to triage"),
    ],
)
def test_empty_tabs_say_what_to_do_next(browser_for, db, people, view, hint):
    html = html_of(browser_for("viewer"), f"/alerts/{view}")
    assert 'class="empty"' in html and hint in html


def test_an_unknown_tab_is_a_400_showing_my_alerts(browser_for, alert):
    response = browser_for("maintainer").get("/alerts/?view=everything")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice" in html and f'href="/alerts/{alert.pk}/"' in html


def test_it_rejects_post(browser_for, db, people):
    assert browser_for("owner").post("/alerts/").status_code == 405
