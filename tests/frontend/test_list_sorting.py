"""Sorting, filtering and paging of the list pages: column headers sort (with `aria-sort`) and
keep the filters; a sort a list does not offer is a 400 naming the `sort` parameter, the list
shown the default way."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from deployments.models import ReleaseState
from identity.models import AuditEvent, Team
from tests.factories import (
    MembershipFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environment_of,
    put_in_state,
    release_of,
)
from tests.support.pages import html_of


@pytest.fixture
def releases(team, people):  # type: ignore[no-untyped-def]
    """Three releases (no approval needed: approved at once): alpha in "b-env" (oldest), beta in
    "a-env" (rolling out), gamma in "b-env" (newest)."""
    envs = {name: environment_of(name) for name in ("a-env", "b-env")}
    made = []
    for name, env in (("alpha", "b-env"), ("beta", "a-env"), ("gamma", "b-env")):
        model = RegisteredModelFactory(name=name, team=team)
        version = ModelVersionFactory(model=model, number=1)
        made.append(release_of(deployment_of(model, envs[env]), version, people["maintainer"]))
    put_in_state(made[1], ReleaseState.PROGRESSING)
    return made


def release_order(html: str) -> list[str]:
    return re.findall(r'<a href="/deployments/\d+/">(\w+)</a>', html)


def test_releases_sort_by_each_offered_column(browser_for, releases):
    client = browser_for("viewer")
    assert release_order(html_of(client, "/releases/")) == ["gamma", "beta", "alpha"]
    assert release_order(html_of(client, "/releases/?sort=started")) == ["alpha", "beta", "gamma"]
    assert release_order(html_of(client, "/releases/?sort=-deployment")) == [
        "gamma",
        "beta",
        "alpha",
    ]
    assert release_order(html_of(client, "/releases/?sort=environment"))[0] == "beta"
    assert release_order(html_of(client, "/releases/?sort=state")) == ["gamma", "alpha", "beta"]


def test_the_sorted_column_says_so_and_its_link_keeps_the_filters(browser_for, releases):
    html = html_of(browser_for("viewer"), "/releases/?state=approved&sort=deployment")
    header = re.search(r'<th scope="col" aria-sort="ascending"><a href="([^"]+)"', html)
    assert header is not None
    assert "state=approved" in header.group(1) and "sort=-deployment" in header.group(1)
    started = re.search(r'aria-sort="none"><a href="([^"]+)"[^>]*>Started', html)
    assert started is not None and "sort=-started" in started.group(1)
    assert release_order(html) == ["alpha", "gamma"]


def test_a_sort_a_list_does_not_offer_is_400_naming_the_parameter(browser_for, releases, team):
    RegisteredModelFactory(name="b-model", team=team)
    client = browser_for("viewer")
    for url in ("/releases/", "/models/", "/audit/", "/teams/"):
        response = client.get(url, {"sort": "password"})
        html = response.content.decode()
        assert response.status_code == 400, url
        assert "sort: &#x27;password&#x27; is not a sort of this list" in html, url
        assert "Sorted the default way instead." in html
    assert release_order(html_of(client, "/releases/?sort=bogus", status=400)) == [
        "gamma",
        "beta",
        "alpha",
    ]


def test_the_models_list_sorts_with_aria_sort(browser_for, team):
    for name in ("b-model", "a-model"):
        RegisteredModelFactory(name=name, team=team)
    html = html_of(browser_for("viewer"), "/models/?sort=-name&q=model")
    header = re.search(r'aria-sort="descending"><a href="([^"]+)"[^>]*>Name', html)
    assert header is not None
    assert "sort=name" in header.group(1) and "q=model" in header.group(1)


def test_the_audit_log_sorts_by_time(browser_for, team):
    for label in ("first", "second"):
        AuditEvent.objects.create(
            actor_type="user",
            actor_label="owner",
            action="model.update",
            target_type="registry.registeredmodel",
            target_id=label,
            target_label=label,
            team_id=team.pk,
            occurred_at=timezone.now(),
        )
    client = browser_for("viewer")
    newest = html_of(client, "/audit/")
    assert newest.index(">second ") < newest.index(">first ")
    oldest = html_of(client, "/audit/?sort=occurred")
    assert oldest.index(">first ") < oldest.index(">second ")
    assert 'aria-sort="ascending"' in oldest


def test_the_teams_list_searches_sorts_and_pages(browser_for, people, team):
    viewer = people["viewer"]
    for i in range(30):
        MembershipFactory(
            team=Team.objects.create(slug=f"t-{i:02d}", name=f"Team {i:02d}"), user=viewer
        )
    client = browser_for("viewer")
    html = html_of(client, "/teams/")
    assert "31 results" in html and 'rel="next"' in html
    found = html_of(client, "/teams/", {"q": "t-07"})
    assert "Team 07" in found and "Team 08" not in found
    by_slug = html_of(client, "/teams/?sort=-slug")
    assert by_slug.index("t-29") < by_slug.index("t-28")
    nothing = html_of(client, "/teams/", {"q": "nope"})
    assert "No team matches this search" in nothing


def test_list_pages_have_breadcrumbs_from_home(browser_for, releases):
    client = browser_for("viewer")
    for url, label in (("/releases/", "Releases"), ("/teams/", "Teams"), ("/audit/", "Audit log")):
        html = html_of(client, url)
        assert '<nav class="breadcrumbs" aria-label="Breadcrumb">' in html
        assert '<li><a href="/">Home</a></li>' in html
        assert f'<span aria-current="page">{label}</span>' in html
