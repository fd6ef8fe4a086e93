"""The navigation reaches the alert, on-call and incident pages: each link renders for a
signed-in person, resolves to a page that answers, and marks itself current there."""

from __future__ import annotations

import pytest

from tests.support.pages import html_of

SECTIONS = [
    ("/alerts/", "Alerts"),
    ("/oncall/", "On-call"),
    ("/incidents/", "Incidents"),
]


@pytest.mark.parametrize(("href", "label"), SECTIONS)
def test_the_nav_links_to_the_section_and_marks_it_current(browser_for, href, label):
    client = browser_for("viewer")
    assert f'<a href="{href}">{label}</a>' in html_of(client, "/models/")
    html = html_of(client, href)
    assert f'<a href="{href}" aria-current="page">{label}</a>' in html


def test_the_on_call_section_links_its_policies_and_stays_current_there(browser_for):
    client = browser_for("viewer")
    assert 'href="/oncall/policies/"' in html_of(client, "/oncall/")
    html = html_of(client, "/oncall/policies/")
    assert '<a href="/oncall/" aria-current="page">On-call</a>' in html


@pytest.mark.parametrize("url", ["/alerts/", "/oncall/", "/oncall/policies/", "/incidents/"])
def test_anonymous_is_sent_to_login(client, db, url):
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
