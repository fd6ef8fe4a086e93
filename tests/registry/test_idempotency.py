"""Idempotency-Key on POSTs: a retried CI call returns the first answer and creates nothing."""

from __future__ import annotations

from identity.models import AuditEvent
from registry.models import ModelVersion

URL = "/api/v1/models/fraud-detector/versions/"


def test_a_retry_with_the_same_key_replays_the_first_answer(client_for, model, version_body):
    client = client_for("token:write")
    first = client.post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="build-42")
    retry = client.post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="build-42")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert ModelVersion.objects.count() == 1
    assert AuditEvent.objects.filter(action="version.register").count() == 1


def test_the_same_key_with_another_body_is_refused(client_for, model, version_body):
    client = client_for("token:write")
    client.post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="build-42")
    other = dict(version_body, source_commit="ffff")
    response = client.post(URL, other, format="json", HTTP_IDEMPOTENCY_KEY="build-42")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert ModelVersion.objects.count() == 1


def test_keys_belong_to_their_caller(client_for, model, version_body):
    client_for("maintainer").post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = client_for("owner").post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 201
    assert ModelVersion.objects.count() == 2


def test_a_failed_request_does_not_burn_the_key(client_for, model, version_body):
    client = client_for("token:write")
    bad = dict(version_body, artifact_digest="sha256:" + "0" * 64)
    assert client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 422
    assert client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 422
    assert (
        client.post(URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 201
    )


def test_an_overlong_key_is_refused(client_for, model, version_body):
    response = client_for("token:write").post(
        URL, version_body, format="json", HTTP_IDEMPOTENCY_KEY="k" * 201
    )
    assert response.status_code == 422
    assert not ModelVersion.objects.exists()


def test_it_works_for_model_creation_too(client_for, team):
    client = client_for("maintainer")
    body = {"name": "churn", "team": "fraud"}
    a = client.post("/api/v1/models/", body, format="json", HTTP_IDEMPOTENCY_KEY="m1")
    b = client.post("/api/v1/models/", body, format="json", HTTP_IDEMPOTENCY_KEY="m1")
    assert a.status_code == b.status_code == 201
