"""The models list: visibility, filters from ModelFilterSet, sorting, paging, HTMX partials."""

from __future__ import annotations

import re

from registry.models import RegisteredModel
from tests.factories import RegisteredModelFactory
from tests.support.pages import html_of


def names_in(response) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'<a href="/models/([\w-]+)/">', response.content.decode())


def test_it_lists_the_models_of_my_teams_only(browser_for, team, other_team):
    RegisteredModelFactory(name="mine", team=team)
    RegisteredModelFactory(name="theirs", team=other_team)
    response = browser_for("viewer").get("/models/")
    assert response.status_code == 200
    assert names_in(response) == ["mine"]


def test_an_admin_sees_every_team(browser_for, team, other_team):
    RegisteredModelFactory(name="mine", team=team)
    RegisteredModelFactory(name="theirs", team=other_team)
    assert names_in(browser_for("admin").get("/models/")) == ["mine", "theirs"]


def test_it_filters_by_search_team_risk_tier_and_tag(browser_for, team, other_team):
    RegisteredModelFactory(name="card-fraud", team=team, risk_tier="high", tags=["payments"])
    RegisteredModelFactory(name="churn", team=team, risk_tier="low", description="fraud-ish")
    RegisteredModelFactory(name="ranker", team=other_team, risk_tier="high")
    client = browser_for("admin")
    assert names_in(client.get("/models/?q=fraud")) == ["card-fraud", "churn"]
    assert names_in(client.get("/models/?risk_tier=high")) == ["card-fraud", "ranker"]
    assert names_in(client.get("/models/?team=search")) == ["ranker"]
    assert names_in(client.get("/models/?tag=payments")) == ["card-fraud"]
    assert names_in(client.get("/models/?q=fraud&risk_tier=low")) == ["churn"]


def test_it_offers_only_visible_teams_in_the_team_filter(browser_for, team, other_team):
    html = html_of(browser_for("viewer"), "/models/")
    assert '<option value="fraud"' in html
    assert '<option value="search"' not in html


def test_it_sorts_by_name_and_by_last_update(browser_for, team):
    for name in ("b-model", "a-model", "c-model"):
        RegisteredModelFactory(name=name, team=team)
    RegisteredModel.objects.get(name="a-model").save()  # touch: newest update
    client = browser_for("viewer")
    assert names_in(client.get("/models/")) == ["a-model", "b-model", "c-model"]
    assert names_in(client.get("/models/?sort=-name")) == ["c-model", "b-model", "a-model"]
    assert names_in(client.get("/models/?sort=-updated"))[0] == "a-model"
    nonsense = client.get("/models/?sort=nonsense")
    assert nonsense.status_code == 400  # named, and shown the default way
    assert names_in(nonsense) == ["a-model", "b-model", "c-model"]


def test_it_paginates_and_keeps_the_filters_in_page_links(browser_for, team):
    for i in range(30):
        RegisteredModelFactory(name=f"m-{i:02d}", team=team, risk_tier="low")
    client = browser_for("viewer")
    first = client.get("/models/?risk_tier=low")
    assert len(names_in(first)) == 25
    assert 'href="?risk_tier=low&amp;page=2"' in first.content.decode()
    second = client.get("/models/?risk_tier=low&page=2")
    assert names_in(second) == [f"m-{i}" for i in range(25, 30)]


def test_it_answers_htmx_with_only_the_results_fragment(browser_for, team):
    RegisteredModelFactory(name="mine", team=team)
    response = browser_for("viewer").get("/models/?q=mi", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="model-results"')
    assert "<html" not in html
    assert names_in(response) == ["mine"]
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(browser_for, team):
    response = browser_for("viewer").get(
        "/models/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert b"<html" in response.content


def test_the_filter_form_works_without_javascript(browser_for):
    html = html_of(browser_for("viewer"), "/models/")
    assert re.search(r'<form class="filters" method="get" action="/models/"', html)
    assert '<button type="submit" class="button">Filter</button>' in html


def test_it_reports_an_invalid_filter(browser_for, team):
    RegisteredModelFactory(name="mine", team=team)
    response = browser_for("viewer").get("/models/?risk_tier=extreme")
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert names_in(response) == []


def test_it_rejects_post(browser_for):
    assert browser_for("viewer").post("/models/").status_code == 405


def test_the_filter_selects_offer_any_as_a_named_first_choice(browser_for):
    html = html_of(browser_for("viewer"), "/models/")
    assert '<option value="" selected>Any risk tier</option>' in html
    assert '<option value="" selected>Any team</option>' in html
    assert "---------" not in html
