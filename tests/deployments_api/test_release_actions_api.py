"""POST /api/v1/releases/{id}/{approve,reject,promote,pause,resume,abort}/: who may, in which
state, and that a refused request leaves nothing behind."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from deployments.models import Approval, Release, ReleaseState
from registry.models import RegisteredModel
from tests.factories import MembershipFactory, UserFactory, give_duty, put_in_state, release_of


def url(release: Release, verb: str) -> str:
    return f"/api/v1/releases/{release.pk}/{verb}/"


@pytest.fixture
def approvers(people, team):  # type: ignore[no-untyped-def]
    """The viewer and the owner carry the approver duty (the maintainer does not)."""
    give_duty(people["viewer"], team, is_approver=True)
    give_duty(people["owner"], team, is_approver=True)
    return people


@pytest.fixture
def release(deployment, versions, approvers) -> Release:  # type: ignore[no-untyped-def]
    return release_of(deployment, versions[3], approvers["maintainer"])


def state_of(release: Release) -> str:
    return Release.objects.get(pk=release.pk).state


def test_an_approver_approves_and_the_release_is_enqueued(
    client_for, release, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for("viewer").post(url(release, "approve"), {"comment": "ok"}, "json")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "approved"
    (approval,) = response.json()["approvals"]
    assert (approval["user"], approval["decision"], approval["comment"]) == (
        "viewer",
        "approve",
        "ok",
    )
    assert response.json()["gates"][0]["status"] == "passed"
    assert len(callbacks) == 1


@pytest.mark.parametrize("verb", ["approve", "reject"])
@pytest.mark.parametrize("author", ["maintainer", "admin"])
def test_it_refuses_the_author_even_an_approver_or_a_superuser(
    client_for, deployment, versions, people, team, author, verb
):
    give_duty(people["maintainer"], team, is_approver=True)
    release = release_of(deployment, versions[3], people[author])
    response = client_for(author).post(url(release, verb), {}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "the author of a release cannot approve or reject it"
    assert not Approval.objects.exists() and state_of(release) == "awaiting_approval"


@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_it_refuses_a_ci_token(client_for, release, verb):
    response = client_for("token:read+write").post(url(release, verb), {}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "CI tokens cannot approve or reject releases; a person decides."
    )
    assert not Approval.objects.exists() and state_of(release) == "awaiting_approval"


@pytest.mark.parametrize("who", ["maintainer", "outsider"])
def test_people_without_the_approver_duty_cannot_approve(client_for, release, who):
    response = client_for(who).post(url(release, "approve"), {}, format="json")
    assert response.status_code == (404 if who == "outsider" else 403)
    assert not Approval.objects.exists()


def test_a_high_risk_model_needs_two_distinct_approvers(
    client_for, deployment, versions, approvers
):
    RegisteredModel.objects.filter(pk=deployment.model_id).update(risk_tier="high")
    release = release_of(deployment, versions[3], approvers["maintainer"])
    first = client_for("viewer").post(url(release, "approve"), {}, format="json")
    assert first.status_code == 200 and first.json()["state"] == "awaiting_approval"
    assert first.json()["gates"][0]["detail"] == "1 of 2: viewer"
    again = client_for("viewer").post(url(release, "approve"), {}, format="json")
    assert again.status_code == 200 and again.json()["state"] == "awaiting_approval"
    second = client_for("owner").post(url(release, "approve"), {}, format="json")
    assert second.json()["state"] == "approved"
    assert Approval.objects.filter(release=release).count() == 2


def test_a_rejection_ends_the_release_and_a_later_approval_conflicts(client_for, release, team):
    response = client_for("owner").post(url(release, "reject"), {"comment": "no"}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "rejected"
    assert response.json()["gates"][0]["status"] == "failed"
    late = client_for("viewer").post(url(release, "approve"), {}, format="json")
    assert late.status_code == 409
    assert late.json()["errors"][0]["field"] == "state"
    assert Approval.objects.filter(release=release).count() == 1


@pytest.mark.parametrize("body", [{}, {"comment": ""}, {"comment": "  "}])
def test_a_rejection_without_a_reason_is_refused_naming_the_comment(client_for, release, body):
    response = client_for("viewer").post(url(release, "reject"), body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "comment", "reason": "is required to reject a release"}
    ]
    assert not Approval.objects.exists() and state_of(release) == "awaiting_approval"
    assert not release.steps.filter(kind="reject").exists()


def test_a_decision_with_a_bad_comment_names_the_field(client_for, release):
    response = client_for("viewer").post(url(release, "approve"), {"comment": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "comment"
    assert not Approval.objects.exists()


@pytest.mark.parametrize("who", ["maintainer", "owner", "token:write"])
def test_operators_pause_and_resume_a_progressing_release(client_for, release, who):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    client = client_for(who)
    paused = client.post(url(release, "pause"), {"reason": "looking"}, format="json")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    resumed = client.post(url(release, "resume"), {}, format="json")
    assert resumed.status_code == 200 and resumed.json()["state"] == "progressing"


@pytest.mark.parametrize("verb", ["pause", "resume", "promote", "abort"])
@pytest.mark.parametrize("who", ["viewer", "token:read"])
def test_viewers_cannot_operate_a_release(client_for, release, verb, who):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    assert client_for(who).post(url(release, verb), {}, format="json").status_code == 403
    assert state_of(release) == "progressing"


def test_promote_skips_the_current_analysis(client_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    index = release.step_index
    response = client_for("maintainer").post(url(release, "promote"), {}, format="json")
    assert response.status_code == 200
    assert response.json()["step_index"] == index + 1
    assert response.json()["gates"][3]["status"] == "skipped"


@pytest.mark.parametrize("verb", ["promote", "resume"])
def test_a_wrong_state_is_a_conflict(client_for, release, verb):
    response = client_for("maintainer").post(url(release, verb), {}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "state"
    assert state_of(release) == "awaiting_approval"
    assert release.steps.count() == 1  # only the "create" step


def test_abort_before_production_ends_the_release(client_for, release):
    response = client_for("owner").post(url(release, "abort"), {"reason": "wrong v"}, "json")
    assert response.status_code == 200
    assert response.json()["state"] == "aborted" and response.json()["is_terminal"] is True
    again = client_for("owner").post(url(release, "pause"), {}, format="json")
    assert again.status_code == 409


def test_an_unknown_action_field_is_refused(client_for, release):
    response = client_for("maintainer").post(url(release, "abort"), {"comment": "x"}, "json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "comment"
    assert state_of(release) == "awaiting_approval"


def test_actions_reject_get(client_for, release):
    assert client_for("owner").get(url(release, "approve")).status_code == 405


def test_an_approver_of_another_team_cannot_approve(client_for, release, other_team):
    stranger = UserFactory(username="stranger")
    MembershipFactory(team=other_team, user=stranger, role="owner", is_approver=True)
    client = APIClient()
    client.force_authenticate(stranger)
    assert client.post(url(release, "approve"), {}, format="json").status_code == 404
