"""The navigation shows "Reviews" to the people with the reviewer duty in a team (and to
superusers, who review everywhere), marks it current on the review pages, and leaves it out for
everyone else."""

from __future__ import annotations

from tests.factories import give_duty
from tests.support.pages import html_of

LINK = '<a href="/reviews/">Reviews</a>'
CURRENT = '<a href="/reviews/" aria-current="page">Reviews</a>'


def test_a_reviewer_has_the_link_and_it_is_current_on_the_review_pages(browser_as, rita, item):
    client = browser_as(rita)
    assert LINK in html_of(client, "/models/")
    assert CURRENT in html_of(client, "/reviews/")
    assert CURRENT in html_of(client, f"/reviews/{item.ref}/")


def test_members_without_the_duty_do_not_see_the_link(browser_for, people):
    for who in ("owner", "maintainer", "viewer", "outsider"):
        assert 'href="/reviews/"' not in html_of(browser_for(who), "/models/"), who


def test_a_superuser_has_the_link(browser_for, people):
    assert LINK in html_of(browser_for("admin"), "/models/")


def test_the_duty_given_later_shows_the_link(browser_for, team, people):
    client = browser_for("viewer")
    assert 'href="/reviews/"' not in html_of(client, "/alerts/")
    give_duty(people["viewer"], team, is_reviewer=True)
    assert LINK in html_of(client, "/alerts/")
