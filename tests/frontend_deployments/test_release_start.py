"""POST /deployments/<id>/releases/: the "Start a release" form of the deployment page."""

from __future__ import annotations

from deployments.models import Deployment, Release


def url(deployment: Deployment) -> str:
    return f"/deployments/{deployment.pk}/releases/"


def test_it_starts_a_release_and_goes_to_its_page(browser_for, deployment):
    response = browser_for("maintainer").post(url(deployment), {"version": "3"})
    release = Release.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/releases/{release.pk}/"
    assert release.version.number == 3 and release.author_label == "maintainer"


def test_a_viewer_cannot_start_one(browser_for, deployment):
    response = browser_for("viewer").post(url(deployment), {"version": "3"})
    assert response.status_code == 403
    assert "may not release create" in response.content.decode()
    assert not Release.objects.exists()


def test_a_second_release_is_refused_with_the_reason(browser_for, deployment):
    client = browser_for("maintainer")
    client.post(url(deployment), {"version": "3"})
    response = client.post(url(deployment), {"version": "1"})
    assert response.status_code == 409
    assert "already has an active release" in response.content.decode()
    assert Release.objects.count() == 1


def test_bad_input_is_shown_on_the_form(browser_for, deployment):
    client = browser_for("maintainer")
    response = client.post(url(deployment), {"version": "three"})
    assert response.status_code == 400
    assert "Enter a whole number." in response.content.decode()
    missing = client.post(url(deployment), {"version": "9"})
    assert missing.status_code == 404
    assert "has no version 9" in missing.content.decode()
    assert not Release.objects.exists()


def test_an_outsider_gets_404(browser_for, deployment):
    assert browser_for("outsider").post(url(deployment), {"version": "3"}).status_code == 404


def test_it_rejects_get(browser_for, deployment):
    assert browser_for("maintainer").get(url(deployment)).status_code == 405
