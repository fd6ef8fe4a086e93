"""/deployments/<id>/: config, versions, active release, recent releases, rollbacks, the
rollback button for those allowed, and the configuration history page."""

from __future__ import annotations

import pytest

from deployments import services
from deployments.models import Deployment, Rollback
from identity.audit import Actor
from tests.factories import give_duty, release_of
from tests.support.pages import html_of


def url(deployment: Deployment) -> str:
    return f"/deployments/{deployment.pk}/"


def test_it_shows_config_versions_and_rollbacks(browser_for, deployment, versions):
    Rollback.objects.create(
        deployment=deployment,
        from_version=versions[2],
        to_version=versions[1],
        actor_label="oncall-ann",
        reason="p95 over SLO",
    )
    response = browser_for("viewer").get(url(deployment))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Configuration r1" in html and "250m requested, 1 at most" in html
    assert "<dt>Stable version</dt><dd>v2" in html
    assert "<dt>Previous version</dt><dd>v1</dd>" in html
    assert (
        "oncall-ann" in html
        and "p95 over SLO" in html
        and '<td data-label="To version">v1</td>' in html
    )
    assert f'href="/deployments/{deployment.pk}/configs/"' in html


def test_it_links_the_active_release_and_lists_recent_ones(
    browser_for, deployment, versions, people
):
    release = release_of(deployment, versions[3], people["maintainer"])
    html = html_of(browser_for("viewer"), url(deployment))
    assert f'<a href="/releases/{release.pk}/">#{release.pk}: v3 (Awaiting approval)</a>' in html
    assert '<td data-label="Versions">v2 → v3</td>' in html


@pytest.mark.parametrize(
    ("who", "shown"), [("maintainer", True), ("owner", True), ("viewer", False)]
)
def test_the_rollback_button_names_the_version_for_those_allowed(
    browser_for, deployment, who, shown
):
    html = html_of(browser_for(who), url(deployment))
    assert ("Roll back to v1…" in html) is shown


def test_an_on_call_viewer_sees_the_rollback_button(browser_for, deployment, people, team):
    give_duty(people["viewer"], team, is_on_call=True)
    assert "Roll back to v1…" in html_of(browser_for("viewer"), url(deployment))


def test_no_rollback_button_without_an_earlier_version(browser_for, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(previous_stable_version=None)
    assert "Roll back to" not in html_of(browser_for("owner"), url(deployment))


@pytest.mark.parametrize(("who", "shown"), [("maintainer", True), ("viewer", False)])
def test_the_start_a_release_form_is_for_maintainers(browser_for, deployment, who, shown):
    html = html_of(browser_for(who), url(deployment))
    assert ("Start release</button>" in html) is shown
    if shown:  # offers the versions, not the one serving
        assert '<option value="3">v3' in html and '<option value="2">' not in html


def test_an_outsider_gets_404(browser_for, deployment):
    assert browser_for("outsider").get(url(deployment)).status_code == 404
    assert browser_for("viewer").get("/deployments/999999/").status_code == 404


def test_it_rejects_post(browser_for, deployment):
    assert browser_for("owner").post(url(deployment)).status_code == 405


def test_the_history_page_lists_revisions_newest_first(browser_for, deployment, people):
    services.deployment_configure(
        actor=Actor.from_principal(people["maintainer"]), deployment=deployment, replicas=5
    )
    html = html_of(browser_for("viewer"), f"/deployments/{deployment.pk}/configs/")
    assert html.index("r2") < html.index("r1")
    assert '<span class="badge ok">current</span>' in html and "<dt>Replicas</dt><dd>5</dd>" in html
    assert browser_for("outsider").get(f"/deployments/{deployment.pk}/configs/").status_code == 404
