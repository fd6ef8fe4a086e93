"""The teams list: the teams one belongs to, with one's role."""

from __future__ import annotations

from tests.support.pages import html_of


def test_it_lists_my_teams_with_my_role(browser_for, team, other_team):
    response = browser_for("maintainer").get("/teams/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'href="/teams/fraud/"' in html and "<td>Maintainer</td>" in html
    assert 'href="/teams/search/"' not in html


def test_an_admin_sees_all_teams(browser_for, team, other_team):
    html = html_of(browser_for("admin"), "/teams/")
    assert 'href="/teams/fraud/"' in html and 'href="/teams/search/"' in html


def test_it_rejects_post(browser_for):
    assert browser_for("owner").post("/teams/").status_code == 405
