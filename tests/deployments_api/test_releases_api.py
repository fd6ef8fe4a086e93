"""/api/v1/releases/: ask for a release, list and filter them, read one with its plan, gates,
timeline and approvals."""

from __future__ import annotations

import pytest

from deployments.models import Release, ReleaseState
from registry.models import RegisteredModel
from tests.factories import RegisteredModelFactory, deployment_of, put_in_state, release_of

URL = "/api/v1/releases/"


def body_for(deployment, version=3):  # type: ignore[no-untyped-def]
    return {"deployment": deployment.pk, "version": version}


@pytest.mark.parametrize("who", ["maintainer", "owner", "token:write"])
def test_it_starts_a_release_that_awaits_approval_in_production(client_for, deployment, who):
    response = client_for(who).post(URL, body_for(deployment), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "awaiting_approval"
    assert body["version"] == 3 and body["from_version"] == 2
    assert body["required_approvals"] == 1  # a medium-risk model in production
    assert body["plan"][0]["phase"] == "staging" and body["plan"][0]["current"] is True
    assert [g["name"] for g in body["gates"]][:3] == ["approvals", "staging", "rehearsal"]
    assert body["gates"][0]["status"] == "pending" and body["gates"][0]["detail"] == "0 of 1"
    assert body["steps"][0]["kind"] == "create"


@pytest.mark.parametrize("who", ["viewer", "token:read"])
def test_viewers_and_read_tokens_cannot_start_one(client_for, deployment, who):
    assert client_for(who).post(URL, body_for(deployment), format="json").status_code == 403
    assert not Release.objects.exists()


def test_an_outsider_cannot_see_the_deployment(client_for, deployment):
    response = client_for("outsider").post(URL, body_for(deployment), format="json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "deployment"


def test_a_low_risk_release_starts_at_once_and_enqueues_a_reconcile_after_commit(
    client_for, deployment, django_capture_on_commit_callbacks
):
    RegisteredModel.objects.filter(pk=deployment.model_id).update(risk_tier="low")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for("maintainer").post(URL, body_for(deployment), format="json")
    assert response.status_code == 201
    assert response.json()["state"] == "approved"
    assert response.json()["gates"][0]["status"] == "skipped"
    assert len(callbacks) == 1


def test_a_second_release_on_a_deployment_with_an_active_one_gets_409(client_for, deployment):
    client = client_for("maintainer")
    assert client.post(URL, body_for(deployment), format="json").status_code == 201
    response = client.post(URL, body_for(deployment, version=1), format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "deployment"
    assert Release.objects.count() == 1


def test_the_idempotency_key_replays_the_first_answer(client_for, deployment):
    client = client_for("token:write")
    headers = {"Idempotency-Key": "ci-run-42"}
    first = client.post(URL, body_for(deployment), format="json", headers=headers)
    again = client.post(URL, body_for(deployment), format="json", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Release.objects.count() == 1


ID = object()  # stands for the deployment's id in the bodies below


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"deployment": "1", "version": 3}, "deployment", 400),
        ({"version": 3}, "deployment", 400),
        ({"deployment": ID, "version": 3, "force": True}, "force", 400),
        ({"deployment": ID, "version": 9}, "version", 404),
        ({"deployment": ID, "version": 2}, "version", 409),  # v2 already serves
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(client_for, deployment, body, field, code):
    body = {k: deployment.pk if v is ID else v for k, v in body.items()}
    response = client_for("maintainer").post(URL, body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert not Release.objects.exists()


def test_it_lists_and_filters_releases(client_for, deployment, versions, envs, team, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    other = deployment_of(RegisteredModelFactory(name="churn", team=team), envs[0])
    other_version = other.model.versions.create(
        number=1, artifact_uri="s3://a/1", artifact_digest="sha256:" + "b" * 64, input_schema={}
    )
    finished = release_of(other, other_version, people["owner"])
    put_in_state(finished, ReleaseState.PROMOTED)
    client = client_for("viewer")
    assert client.get(URL).json()["count"] == 2
    waiting = client.get(URL, {"state": "awaiting_approval"}).json()["results"]
    assert [row["id"] for row in waiting] == [release.pk]
    assert [r["id"] for r in client.get(URL, {"model": "churn"}).json()["results"]] == [finished.pk]
    assert [r["id"] for r in client.get(URL, {"environment": "production"}).json()["results"]] == [
        release.pk
    ]
    assert client.get(URL, {"deployment": other.pk}).json()["results"][0]["model"] == "churn"
    assert client.get(URL, {"state": "sideways"}).status_code == 400


def test_an_outsider_sees_no_release(client_for, deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    assert client_for("outsider").get(URL).json()["results"] == []
    assert client_for("outsider").get(f"{URL}{release.pk}/").status_code == 404


def test_the_detail_marks_the_current_step_and_shows_traffic(
    client_for, deployment, versions, people
):
    release = release_of(deployment, versions[3], people["maintainer"])
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    Release.objects.filter(pk=release.pk).update(traffic={"weights": {"2": 90, "3": 10}})
    body = client_for("token:read").get(f"{URL}{release.pk}/").json()
    current = [step for step in body["plan"] if step["current"]]
    assert len(current) == 1 and current[0]["action"] == "analyze"
    assert current[0]["params"]["weight"] == 10
    assert body["weights"] == [{"version": 2, "percent": 90}, {"version": 3, "percent": 10}]
    assert body["author"] == "maintainer" and body["is_terminal"] is False
    analysis = [g for g in body["gates"] if g["name"].startswith("analysis")]
    assert [g["status"] for g in analysis] == ["pending", "pending"]
