"""POST /api/v1/reviews/ and GET /api/v1/reviews/{ref}/: a team's write token submits (201, the
same ref again 200, the same request under another ref 409), bad input is 400 naming the field
with nothing written, a body over the limit is 413, a deployment of another team is "not found"
exactly like one that does not exist; the outcome is read by the team's tokens and members, by
nobody else, and never shows the input summary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from identity.models import AuditEvent
from reviews import callbacks
from reviews.api.serializers import OutcomeSerializer
from reviews.models import ReviewEvent, ReviewItem
from tests.factories import decided_item_of, make_token, queued_item_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/reviews/"
OUTCOME_FIELDS = {
    "ref",
    "deployment",
    "model",
    "version",
    "track",
    "request_id",
    "mode",
    "reason",
    "status",
    "level",
    "decision",
    "output",
    "decided_at",
    "sla_deadline",
    "appealable",
    "appeal",
}


def post(client: Any, body: Any) -> Any:
    return client.post(URL, body, format="json")


def nothing_written() -> bool:
    return not (
        ReviewItem.objects.exists()
        or ReviewEvent.objects.exists()
        or AuditEvent.objects.filter(action="review.submit").exists()
    )


def fields_of(response: Any) -> list[str | None]:
    return [error["field"] for error in response.json()["errors"]]


# Submitting -------------------------------------------------------------------------------------


def test_a_write_token_submits_an_item(client_for, deployment, body):
    response = post(client_for("token:write"), body)
    assert response.status_code == 201, response.json()
    item = ReviewItem.objects.get()
    assert response.json() == {
        "ref": body["ref"],
        "status": "pending",
        "level": 1,
        "mode": "held",
        "sla_deadline": item.sla_deadline.isoformat().replace("+00:00", "Z"),
        "url": f"{django_settings.PORTAL_URL}/api/v1/reviews/{body['ref']}/",
    }
    assert item.input_summary == body["input_summary"]


def test_the_same_ref_again_answers_200_with_the_same_item(client_for, deployment, body):
    client = client_for("token:write")
    first = post(client, body)
    again = post(client, body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert ReviewItem.objects.count() == 1


def test_another_ref_for_the_same_request_is_409_naming_request_id(client_for, deployment, body):
    client = client_for("token:write")
    post(client, body)
    response = post(client, {**body, "ref": "rv_anotherreference0001"})
    assert response.status_code == 409
    assert fields_of(response) == ["request_id"]
    assert ReviewItem.objects.count() == 1


def test_a_ref_is_made_when_none_is_sent(client_for, deployment, body):
    del body["ref"]
    response = post(client_for("token:write"), body)
    assert response.status_code == 201
    assert response.json()["ref"].startswith("rv_")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ref": "not-a-ref"}, "ref"),
        ({"ref": None}, "ref"),
        ({"deployment": "7"}, "deployment"),
        ({"deployment": None}, "deployment"),
        ({"model": ""}, "model"),
        ({"model": 7}, "model"),
        ({"version": "1"}, "version"),
        ({"version": 0}, "version"),
        ({"version": 1.5}, "version"),
        ({"track": "c" * 21}, "track"),
        ({"track": "can ary"}, "track"),
        ({"track": 3}, "track"),
        ({"request_id": ""}, "request_id"),
        ({"request_id": "r" * 129}, "request_id"),
        ({"request_id": "tab\there"}, "request_id"),
        ({"mode": "sometimes"}, "mode"),
        ({"reason": "because"}, "reason"),
        ({"reason": None}, "reason"),
        ({"prediction": {}}, "prediction"),
        ({"prediction": "declined"}, "prediction"),
        ({"prediction": {"label": "x" * (16 * 1024)}}, "prediction"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "0.5"}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"input_summary": ["income"]}, "input_summary"),
        ({"input_summary": {f"f{i}": i for i in range(51)}}, "input_summary"),
        ({"input_summary": {"notes": "n" * 1001}}, "input_summary.notes"),
        ({"input_summary": {"address": {"city": "Oslo"}}}, "input_summary.address"),
        ({"input_summary": {"tags": ["a"]}}, "input_summary.tags"),
        ({"explanation": "because"}, "explanation"),
        ({"explanation": {"weights": "w" * (32 * 1024)}}, "explanation"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_field_is_400_naming_it_and_nothing_is_written(
    client_for, deployment, body, change, field
):
    response = post(client_for("token:write"), {**body, **change})
    assert response.status_code == 400, response.json()
    assert fields_of(response) == [field]
    assert nothing_written()


@pytest.mark.parametrize(
    "missing", ["deployment", "model", "version", "request_id", "mode", "reason", "prediction"]
)
def test_a_missing_field_is_400_naming_it(client_for, deployment, body, missing):
    del body[missing]
    response = post(client_for("token:write"), body)
    assert response.status_code == 400
    assert fields_of(response) == [missing]
    assert nothing_written()


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json", b'"text"'])
def test_a_body_that_is_not_an_object_is_400(client_for, deployment, raw):
    response = client_for("token:write").post(URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert nothing_written()


def test_a_body_over_the_limit_is_413_naming_the_body(client_for, deployment, body):
    body["explanation"] = {"blob": "x" * (64 * 1024)}
    response = post(client_for("token:write"), body)
    assert response.status_code == 413
    assert response.json()["errors"] == [
        {"field": "body", "reason": response.json()["detail"]},
    ]
    assert "the limit is 65536 bytes" in response.json()["detail"]
    assert nothing_written()


def test_the_limit_is_a_setting(client_for, deployment, body, settings):
    settings.REVIEWS_MAX_SUBMISSION_BYTES = 200
    response = post(client_for("token:write"), body)
    assert response.status_code == 413
    assert fields_of(response) == ["body"]
    assert nothing_written()


@pytest.mark.parametrize(
    ("change", "field"),
    [({"model": "someone-elses-model"}, "model"), ({"version": 9}, "version")],
)
def test_the_model_and_version_must_be_the_deployments(client_for, deployment, body, change, field):
    response = post(client_for("token:write"), {**body, **change})
    assert response.status_code == 422
    assert fields_of(response) == [field]
    assert nothing_written()


def test_a_deployment_without_a_review_policy_is_refused_naming_it(
    client_for, people, deployment, body
):
    client_for("owner").patch(
        f"/api/v1/deployments/{deployment.pk}/", {"review_policy": {}}, format="json"
    )
    response = post(client_for("token:write"), body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "deployment", "reason": "has no review policy"}]
    assert nothing_written()


def test_another_teams_deployment_is_not_found_like_a_missing_one(
    client_for, deployment, other_deployment, body
):
    client = client_for("token:write")
    theirs = post(client, {**body, "deployment": other_deployment.pk, "model": "search-ranker"})
    missing = post(client, {**body, "deployment": 999_999, "model": "search-ranker"})
    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert fields_of(theirs) == fields_of(missing) == ["deployment"]
    assert theirs.json()["detail"] == f"no deployment {other_deployment.pk}"
    assert missing.json()["detail"] == "no deployment 999999"
    assert nothing_written()


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("token:read", 403),
        ("viewer", 403),
        ("outsider", 404),
        ("anonymous", 401),
        ("maintainer", 201),
        ("owner", 201),
    ],
)
def test_who_may_submit(client_for, deployment, body, who, status):
    response = post(client_for(who), body)
    assert response.status_code == status
    assert ReviewItem.objects.exists() == (status == 201)


def test_a_get_on_the_submission_url_is_405(client_for, deployment):
    assert client_for("token:write").get(URL).status_code == 405


# Reading the outcome ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["token:read", "token:write", "viewer", "owner", "admin"])
def test_the_teams_tokens_and_members_read_the_outcome(client_for, deployment, who):
    item = queued_item_of(deployment, input_summary={"surname": "Lovelace-unique-marker"})
    response = client_for(who).get(f"{URL}{item.ref}/")
    assert response.status_code == 200
    outcome = response.json()
    assert set(outcome) == OUTCOME_FIELDS
    assert outcome["ref"] == item.ref
    assert (outcome["status"], outcome["level"], outcome["decision"], outcome["output"]) == (
        "pending",
        1,
        None,
        None,
    )
    assert outcome["appealable"] is False and outcome["appeal"] is None
    assert "Lovelace-unique-marker" not in response.content.decode()
    assert "surname" not in response.content.decode()


@pytest.mark.parametrize("who", ["token:read", "viewer", "owner"])
def test_another_teams_item_is_not_found_like_a_missing_one(client_for, other_deployment, who):
    theirs = queued_item_of(other_deployment)
    client = client_for(who)
    response = client.get(f"{URL}{theirs.ref}/")
    missing = client.get(f"{URL}rv_doesnotexist0000000000/")
    assert (response.status_code, missing.status_code) == (404, 404)
    assert fields_of(response) == fields_of(missing) == ["ref"]


def test_the_other_teams_own_token_reads_its_item(other_team, other_deployment):
    theirs = queued_item_of(other_deployment)
    _, secret = make_token(other_team, ["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(f"{URL}{theirs.ref}/").json()["ref"] == theirs.ref


def test_an_anonymous_caller_is_401(client_for, deployment):
    item = queued_item_of(deployment)
    assert client_for("anonymous").get(f"{URL}{item.ref}/").status_code == 401


def test_a_confirmed_outcome_gives_the_prediction(client_for, deployment, reviewer):
    item = decided_item_of(deployment, reviewer, decision="confirm")
    outcome = client_for("token:read").get(f"{URL}{item.ref}/").json()
    assert (outcome["status"], outcome["decision"], outcome["output"]) == (
        "decided",
        "confirm",
        item.prediction,
    )
    assert outcome["decided_at"] == item.decided_at.isoformat().replace("+00:00", "Z")
    assert outcome["appealable"] is True
    assert (outcome["model"], outcome["version"], outcome["deployment"]) == (
        "credit-scorer",
        1,
        deployment.pk,
    )


def test_an_overridden_outcome_gives_the_corrected_output(client_for, deployment, reviewer):
    item = decided_item_of(deployment, reviewer, decision="override", output={"label": "approved"})
    outcome = client_for("token:read").get(f"{URL}{item.ref}/").json()
    assert (outcome["decision"], outcome["output"]) == ("override", {"label": "approved"})


def test_the_documented_fields_are_the_ones_written(deployment, reviewer):
    item = decided_item_of(deployment, reviewer)
    assert set(OutcomeSerializer().fields) == set(callbacks.body_of(item)) == OUTCOME_FIELDS
    assert OutcomeSerializer(item).data == callbacks.body_of(item)
    json.dumps(callbacks.body_of(item))  # plain JSON, as the callback sends it
