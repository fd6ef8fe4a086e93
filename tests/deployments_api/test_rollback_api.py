"""POST /api/v1/deployments/{id}/rollback/: the one button, for maintainers and whoever is on
call; it answers 202 with the Rollback and only enqueues the work after commit."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Release, ReleaseState, Rollback
from tests.factories import give_duty, put_in_state, release_of


def url(deployment: Deployment) -> str:
    return f"/api/v1/deployments/{deployment.pk}/rollback/"


@pytest.mark.parametrize("who", ["maintainer", "owner", "token:write"])
def test_it_rolls_back_to_the_previous_version(
    client_for, deployment, who, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(who).post(url(deployment), {"reason": "p95 up"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["to_version"] == 1 and body["from_version"] == 2
    assert body["state"] == "pending" and body["reason"] == "p95 up"
    assert len(callbacks) == 1  # execute_rollback, enqueued once the transaction commits
    assert Rollback.objects.get(pk=body["id"]).to_version.number == 1


@pytest.mark.parametrize("who", ["viewer", "token:read"])
def test_a_viewer_cannot_roll_back(client_for, deployment, who):
    assert client_for(who).post(url(deployment), {}, format="json").status_code == 403
    assert not Rollback.objects.exists()


def test_a_viewer_on_call_can_roll_back(client_for, deployment, people, team):
    give_duty(people["viewer"], team, is_on_call=True)
    response = client_for("viewer").post(url(deployment), {}, format="json")
    assert response.status_code == 202
    assert response.json()["actor"] == "viewer"


def test_an_outsider_gets_404(client_for, deployment):
    assert client_for("outsider").post(url(deployment), {}, format="json").status_code == 404


def test_with_no_earlier_version_it_conflicts(client_for, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(previous_stable_version=None)
    response = client_for("maintainer").post(url(deployment), {}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "deployment"
    assert not Rollback.objects.exists()


def test_a_second_press_returns_the_same_rollback(client_for, deployment):
    client = client_for("maintainer")
    first = client.post(url(deployment), {}, format="json").json()
    second = client.post(url(deployment), {}, format="json").json()
    assert first["id"] == second["id"]
    assert Rollback.objects.count() == 1


def test_it_turns_around_a_release_that_moved_production_traffic(
    client_for, deployment, versions, people
):
    release = release_of(deployment, versions[3], people["maintainer"])
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    release.steps.create(kind="traffic", plan_index=release.step_index - 1, actor_label="engine")
    response = client_for("maintainer").post(url(deployment), {}, format="json")
    assert response.status_code == 202
    assert response.json()["to_version"] == 2 and response.json()["release"] == release.pk
    assert Release.objects.get(pk=release.pk).state == ReleaseState.ROLLING_BACK


@pytest.mark.parametrize(("body", "field"), [({"reason": 5}, "reason"), ({"why": "x"}, "why")])
def test_bad_input_names_the_field(client_for, deployment, body, field):
    response = client_for("maintainer").post(url(deployment), body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not Rollback.objects.exists()


def test_it_rejects_get(client_for, deployment):
    assert client_for("maintainer").get(url(deployment)).status_code == 405
