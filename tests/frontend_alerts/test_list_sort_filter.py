"""The alerts and incidents lists filter (state or status, severity, mine), sort on their column
headers (aria-sort says how) and page; a bad choice is a 400 naming the field, never a 500."""

from __future__ import annotations

import re

from tests.factories import alert_of, incident_of
from tests.support.pages import html_of


def ids(html: str, kind: str = "alerts") -> list[int]:
    return [int(pk) for pk in re.findall(rf'<a href="/{kind}/(\d+)/">', html)]


def test_the_open_tabs_are_worst_first_and_say_so(browser_for, alert, team):
    info = alert_of(team, title="fyi", severity="info")
    html = html_of(browser_for("viewer"), "/alerts/?view=team")
    assert ids(html) == [alert.pk, info.pk]
    assert re.search(r'<th scope="col" aria-sort="descending"><a [^>]*>Severity', html)
    assert re.search(r'<th scope="col" aria-sort="none"><a [^>]*>Since', html)


def test_a_column_header_sorts_the_other_way(browser_for, alert, team):
    info = alert_of(team, title="fyi", severity="info")
    html = html_of(browser_for("viewer"), "/alerts/?view=team&sort=severity")
    assert ids(html) == [info.pk, alert.pk]
    assert re.search(r'aria-sort="ascending"><a href="\?[^"]*sort=-severity', html)
    html = html_of(browser_for("viewer"), "/alerts/?view=team&sort=title")
    assert ids(html) == [alert.pk, info.pk]  # "Error budget..." before "fyi"


def test_it_filters_by_state_severity_and_mine(browser_for, alert, team, people):
    acked = alert_of(team, title="seen", severity="warning", status="acknowledged")
    client = browser_for("maintainer")
    assert ids(html_of(client, "/alerts/?view=team&status=acknowledged")) == [acked.pk]
    assert ids(html_of(client, "/alerts/?view=team&severity=critical")) == [alert.pk]
    assert ids(html_of(client, "/alerts/?view=team&mine=on")) == [alert.pk]
    html = html_of(client, "/alerts/?view=team&severity=info")
    assert "No alert in this tab matches these filters." in html


def test_the_deployment_page_links_to_its_alerts(browser_for, alert, team, deployment):
    other = alert_of(team, title="elsewhere")
    html = html_of(browser_for("viewer"), f"/alerts/?view=team&deployment={deployment.pk}")
    assert ids(html) == [alert.pk] and other.pk not in ids(html)


def test_a_bad_choice_is_a_400_naming_the_field(browser_for, alert):
    response = browser_for("maintainer").get("/alerts/?severity=apocalyptic&sort=mood")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Severity: Select a valid choice" in html and "Sort: Select a valid choice" in html
    assert f'href="/alerts/{alert.pk}/"' in html  # the list as if they were absent


def test_it_pages_keeping_the_filters(browser_for, team, people):
    for i in range(30):
        alert_of(team, title=f"alert {i:02d}", assignee=people["maintainer"])
    html = html_of(browser_for("maintainer"), "/alerts/?view=team&severity=critical")
    assert len(ids(html)) == 25 and "30 results" in html
    assert 'href="?view=team&amp;severity=critical&amp;page=2"' in html


def test_incidents_filter_and_sort(browser_for, team, people):
    fire = incident_of(team, title="a fire", severity="critical")
    drizzle = incident_of(team, title="drizzle", severity="info")
    client = browser_for("owner")
    assert ids(html_of(client, "/incidents/?severity=info"), "incidents") == [drizzle.pk]
    html = html_of(client, "/incidents/?sort=-severity")
    assert ids(html, "incidents") == [fire.pk, drizzle.pk]
    assert re.search(r'aria-sort="descending"><a [^>]*>Severity', html)
    html = html_of(client, "/incidents/?sort=severity")
    assert ids(html, "incidents") == [drizzle.pk, fire.pk]
    assert "No incident matches these filters." in html_of(client, "/incidents/?mine=on")
    assert client.get("/incidents/?status=burning").status_code == 400


def test_lists_have_breadcrumbs_and_local_times(browser_for, alert):
    html = html_of(browser_for("maintainer"), "/alerts/")
    assert 'aria-label="Breadcrumb"' in html and 'class="when"' in html
