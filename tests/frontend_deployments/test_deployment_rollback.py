"""/deployments/<id>/rollback/: a confirmation that names the version it returns to (GET) and
the rollback itself (POST), for maintainers and whoever is on call."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Rollback
from tests.factories import give_duty
from tests.support.pages import html_of


def url(deployment: Deployment) -> str:
    return f"/deployments/{deployment.pk}/rollback/"


def test_the_confirmation_names_the_deployment_environment_and_version(browser_for, deployment):
    response = browser_for("maintainer").get(url(deployment))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Roll back fraud-detector in production to v1?" in html
    assert 'method="post"' in html and "Roll back to v1</button>" in html
    assert not Rollback.objects.exists()  # looking is not doing


@pytest.mark.parametrize("who", ["maintainer", "owner"])
def test_posting_rolls_back_and_enqueues_the_work(
    browser_for, deployment, who, django_capture_on_commit_callbacks
):
    client = browser_for(who)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url(deployment), {"reason": "error spike"})
    assert response.status_code == 302
    assert response["Location"] == f"/deployments/{deployment.pk}/"
    rollback = Rollback.objects.get()
    assert rollback.to_version.number == 1 and rollback.reason == "error spike"
    assert rollback.actor_label == who
    assert len(callbacks) == 1
    page = html_of(client, response["Location"])
    assert "Rolling back fraud-detector in production to v1." in page


def test_a_viewer_sees_no_form_and_cannot_post(browser_for, deployment):
    client = browser_for("viewer")
    html = html_of(client, url(deployment))
    assert "You may not roll back" in html and "<button" not in html.split("confirm-title")[1]
    response = client.post(url(deployment), {"reason": "x"})
    assert response.status_code == 403
    assert not Rollback.objects.exists()


def test_an_on_call_viewer_may_roll_back(browser_for, deployment, people, team):
    give_duty(people["viewer"], team, is_on_call=True)
    assert browser_for("viewer").post(url(deployment), {}).status_code == 302
    assert Rollback.objects.get().actor_label == "viewer"


def test_an_outsider_gets_404(browser_for, deployment):
    assert browser_for("outsider").get(url(deployment)).status_code == 404
    assert browser_for("outsider").post(url(deployment), {}).status_code == 404


def test_with_nothing_to_go_back_to_it_says_so(browser_for, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(previous_stable_version=None)
    client = browser_for("owner")
    assert "Nothing to roll back to" in html_of(client, url(deployment))
    response = client.post(url(deployment), {})
    assert response.status_code == 409
    assert "no earlier promoted version" in response.content.decode()
    assert not Rollback.objects.exists()


def test_a_too_long_reason_is_bad_input(browser_for, deployment):
    response = browser_for("owner").post(url(deployment), {"reason": "x" * 2001})
    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()
    assert not Rollback.objects.exists()


def test_it_rejects_put(browser_for, deployment):
    assert browser_for("owner").put(url(deployment)).status_code == 405
