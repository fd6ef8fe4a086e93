"""The model page: facts, versions, aliases and their form, recent changes."""

from __future__ import annotations

from identity.models import AuditEvent
from registry.models import Alias
from tests.factories import RegisteredModelFactory
from tests.support.pages import html_of

URL = "/models/fraud-scorer/"


def champion_version(model) -> int:  # type: ignore[no-untyped-def]
    return Alias.objects.get(model=model, name="champion").version.number


def test_it_shows_facts_versions_aliases_owners_and_recent_changes(browser_for, scorer):
    response = browser_for("viewer").get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Scores card payments." in html
    assert "Owners</dt><dd>owner</dd>" in html
    assert html.count('href="/models/fraud-scorer/versions/') >= 3  # v2, v1, @champion
    v1 = scorer.versions.get(number=1)
    assert v1.artifact_digest[:19] in html and v1.artifact_digest not in html.replace(
        f'title="{v1.artifact_digest}"', ""
    )
    assert '<span class="tag">@champion</span>' in html
    assert "alias.set" in html  # recent changes come from the audit log


def test_an_outsider_gets_404_for_another_teams_model(browser_for, scorer):
    assert browser_for("outsider").get(URL).status_code == 404


def test_an_unknown_model_is_404(browser_for, scorer):
    assert browser_for("owner").get("/models/no-such-model/").status_code == 404


def test_it_rejects_put(browser_for, scorer):
    assert browser_for("owner").put(URL).status_code == 405


def test_a_viewer_sees_no_alias_form_and_is_forbidden_to_post_it(browser_for, scorer):
    client = browser_for("viewer")
    html = html_of(client, URL)
    assert "Set alias" not in html and "Remove @champion" not in html
    events = AuditEvent.objects.count()
    response = client.post(URL, {"name": "champion", "version": 2})
    assert response.status_code == 403
    assert champion_version(scorer) == 1
    assert AuditEvent.objects.count() == events


def test_a_maintainer_points_an_alias_at_another_version(browser_for, scorer):
    client = browser_for("maintainer")
    assert "Set alias" in html_of(client, URL)
    response = client.post(URL, {"name": "champion", "version": 2})
    assert response.status_code == 302
    assert response["Location"] == URL
    assert champion_version(scorer) == 2
    event = AuditEvent.objects.filter(action="alias.set").first()
    assert event.actor_label == "maintainer" and event.after == {"version": 2}
    assert "Alias champion now points at v2." in html_of(client, URL)


def test_it_sets_an_alias_in_place_with_htmx(browser_for, scorer):
    response = browser_for("maintainer").post(
        URL, {"name": "challenger", "version": 2}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="aliases"')
    assert (
        '<section id="versions" class="card" aria-labelledby="versions-title" hx-swap-oob="true">'
        in html
    )
    assert 'id="messages"' in html and "now points at v2" in html
    assert Alias.objects.get(model=scorer, name="challenger").version.number == 2


def test_it_shows_form_errors_for_a_bad_alias_name_and_writes_nothing(browser_for, scorer):
    response = browser_for("maintainer").post(URL, {"name": "not a slug!", "version": 2})
    assert response.status_code == 400
    assert b"Enter a valid" in response.content
    assert Alias.objects.filter(model=scorer).count() == 1


def test_it_reports_an_unknown_version_on_the_form_and_writes_nothing(browser_for, scorer):
    events = AuditEvent.objects.count()
    response = browser_for("maintainer").post(
        URL, {"name": "champion", "version": 99}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert b"fraud-scorer has no version 99" in response.content
    assert champion_version(scorer) == 1
    assert AuditEvent.objects.count() == events


def test_a_maintainer_removes_an_alias(browser_for, scorer):
    response = browser_for("maintainer").post(f"{URL}aliases/champion/delete/")
    assert response.status_code == 302
    assert not Alias.objects.filter(model=scorer).exists()
    assert AuditEvent.objects.filter(action="alias.delete").count() == 1


def test_a_viewer_may_not_remove_an_alias(browser_for, scorer):
    response = browser_for("viewer").post(f"{URL}aliases/champion/delete/")
    assert response.status_code == 403
    assert Alias.objects.filter(model=scorer).exists()


def test_removing_a_missing_alias_is_404_and_removal_rejects_get(browser_for, scorer):
    client = browser_for("maintainer")
    assert client.post(f"{URL}aliases/nope/delete/").status_code == 404
    assert client.get(f"{URL}aliases/champion/delete/").status_code == 405


def test_an_outsider_cannot_touch_aliases_of_another_team(browser_for, scorer, other_team):
    RegisteredModelFactory(name="ranker", team=other_team)
    assert browser_for("outsider").post(URL, {"name": "x", "version": 1}).status_code == 404
    assert Alias.objects.filter(model=scorer).count() == 1
