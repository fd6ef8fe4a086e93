"""/releases/: the releases one may see, newest first, filtered by state (in place with HTMX)."""

from __future__ import annotations

from deployments.models import ReleaseState
from tests.factories import put_in_state, release_of
from tests.support.pages import html_of

URL = "/releases/"


def test_it_lists_releases_with_versions_and_state(browser_for, deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    html = html_of(browser_for("viewer"), URL)
    assert f'<a href="/releases/{release.pk}/">#{release.pk}</a>' in html
    assert "<td>v2 → v3</td>" in html and "Awaiting approval" in html


def test_it_filters_by_state(browser_for, deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    put_in_state(release, ReleaseState.PROMOTED)
    client = browser_for("viewer")
    assert f"#{release.pk}</a>" in html_of(client, URL, {"state": "promoted"})
    waiting = html_of(client, URL, {"state": "awaiting_approval"})
    assert f"#{release.pk}</a>" not in waiting and "No releases match" in waiting


def test_htmx_gets_only_the_results(browser_for, deployment, versions, people):
    release_of(deployment, versions[3], people["maintainer"])
    response = browser_for("viewer").get(URL, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<section id="release-results"') and "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_a_bad_state_is_400_with_the_error(browser_for, deployment):
    response = browser_for("viewer").get(URL, {"state": "sideways"})
    assert response.status_code == 400
    assert "Some filters are not valid" in response.content.decode()


def test_an_outsider_sees_no_release_of_the_team(browser_for, deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    assert f"#{release.pk}</a>" not in html_of(browser_for("outsider"), URL)


def test_it_rejects_post(browser_for, deployment):
    assert browser_for("owner").post(URL).status_code == 405
