"""API reads of the registry run in autocommit (no BEGIN ... COMMIT around a SELECT a CI pipeline
polls); writes stay one transaction for the whole request (core.api.ReadsWithoutTransaction).
These tests run outside the test transaction, as a server does."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import ModelVersion
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)


def statements(client, method: str, path: str, body=None) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path, body, format="json")
    return response.status_code, [q["sql"].split()[0].upper() for q in queries.captured_queries]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/fraud-detector/",
        "/api/v1/models/fraud-detector/versions/",
        "/api/v1/models/fraud-detector/versions/1/",
        "/api/v1/models/fraud-detector/aliases/",
    ],
)
def test_a_read_opens_no_transaction(client_for, model, path):
    ModelVersionFactory(model=model, number=1)
    status, sql = statements(client_for("token:read"), "get", path)
    assert status == 200
    assert not {"BEGIN", "SAVEPOINT", "COMMIT"} & set(sql), sql
    assert set(sql) <= {"SELECT", "UPDATE"}  # UPDATE: the token's last_used_at, once a minute


def test_a_failed_read_leaves_the_connection_usable(client_for, model):
    client = client_for("token:read")
    assert client.get("/api/v1/models/fraud-detector/versions/9/").status_code == 404
    assert client.get("/api/v1/models/nope/versions/1/").status_code == 404
    assert client.get("/api/v1/models/fraud-detector/versions/", {"cursor": "x"}).status_code == 400
    assert client.get("/api/v1/models/fraud-detector/").status_code == 200


def test_a_write_is_one_transaction_from_authentication_on(client_for, model, version_body):
    status, sql = statements(
        client_for("token:write"), "post", "/api/v1/models/fraud-detector/versions/", version_body
    )
    assert status == 201
    assert sql[0] == "BEGIN" and sql[-1] == "COMMIT", sql
    assert sql.count("BEGIN") == 1


def test_a_refused_write_leaves_nothing(client_for, model, version_body):
    version_body["artifact_digest"] = "sha256:" + "0" * 64
    response = client_for("token:write").post(
        "/api/v1/models/fraud-detector/versions/", version_body, format="json"
    )
    assert response.status_code == 422
    assert not ModelVersion.objects.exists()
    model.refresh_from_db()
    assert model.last_version_number == 0
