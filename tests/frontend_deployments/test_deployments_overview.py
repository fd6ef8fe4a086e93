"""/deployments/: per environment, each deployment with its stable version, the version of its
active release, the traffic split and the state."""

from __future__ import annotations

from deployments.models import Release, ReleaseState
from frontend import deployment_views
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    put_in_state,
    release_of,
)
from tests.support.pages import html_of

URL = "/deployments/"


def test_it_shows_each_environment_with_its_deployments(browser_for, deployment, envs, team):
    deployment_of(RegisteredModelFactory(name="churn", team=team), envs[0])
    response = browser_for("viewer").get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index('id="env-staging"') < html.index('id="env-production"')
    assert f'href="/deployments/{deployment.pk}/"' in html
    assert '<td data-label="Stable">v2</td>' in html and '<span class="tag">v2 100%</span>' in html
    assert "Nothing deployed" in html  # churn has no version serving
    assert 'aria-current="page">Deployments</a>' in html


def test_an_active_canary_shows_its_version_and_weights(browser_for, deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    Release.objects.filter(pk=release.pk).update(traffic={"weights": {"2": 90, "3": 10}})
    html = html_of(browser_for("viewer"), URL)
    assert f'href="/releases/{release.pk}/">#{release.pk}: v3</a>' in html
    assert '<span class="tag">v2 90%</span><span class="tag">v3 10%</span>' in html
    assert "Rolling out" in html


def test_an_outsider_sees_none_of_the_teams_deployments(browser_for, deployment):
    html = html_of(browser_for("outsider"), URL)
    assert "fraud-detector" not in html and "No deployments you can see yet." in html


def test_it_requires_login(browser_for, deployment):
    response = browser_for("anonymous").get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_rejects_post(browser_for, deployment):
    assert browser_for("owner").post(URL).status_code == 405


def test_a_version_of_a_model_not_deployed_is_not_listed(browser_for, deployment, team):
    ModelVersionFactory(model=RegisteredModelFactory(name="orphan", team=team), number=1)
    assert "orphan" not in html_of(browser_for("viewer"), URL)


def test_it_shows_one_page_of_deployments_at_a_time(
    browser_for, deployment, envs, team, monkeypatch
):
    monkeypatch.setattr(deployment_views, "OVERVIEW_PAGE_SIZE", 2)
    for name in ("churn", "upsell"):
        deployment_of(RegisteredModelFactory(name=name, team=team), envs[0])
    client = browser_for("viewer")
    first = html_of(client, URL)  # staging first: churn, upsell
    assert "churn" in first and "upsell" in first and "fraud-detector" not in first
    assert "Page 1 of 2" in first and "3 results" in first
    second = html_of(client, URL + "?page=2")  # then production
    assert 'id="env-production"' in second and "churn" not in second
    assert f'href="/deployments/{deployment.pk}/"' in second
