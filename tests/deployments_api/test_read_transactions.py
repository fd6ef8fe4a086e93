"""Reads of deployments and releases (what a CI pipeline polls) run in autocommit, with no
BEGIN ... COMMIT around their SELECTs; an action on a release stays one transaction for the
whole request (core.api.ReadsWithoutTransaction). Run outside the test transaction, as a
server does."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Release
from tests.factories import give_duty, release_of

pytestmark = pytest.mark.django_db(transaction=True)


def statements(client, method: str, path: str, body=None) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path, body, format="json")
    return response.status_code, [q["sql"].split()[0].upper() for q in queries.captured_queries]


@pytest.fixture
def release(deployment, versions, people) -> Release:  # type: ignore[no-untyped-def]
    return release_of(deployment, versions[3], people["maintainer"])


@pytest.mark.parametrize(
    "path",
    ["/api/v1/releases/{release}/", "/api/v1/releases/", "/api/v1/deployments/{deployment}/"],
)
def test_a_read_opens_no_transaction(client_for, release, path):
    url = path.format(release=release.pk, deployment=release.deployment_id)
    status, sql = statements(client_for("token:read"), "get", url)
    assert status == 200
    assert not {"BEGIN", "SAVEPOINT", "COMMIT"} & set(sql), sql


def test_an_action_is_one_transaction(client_for, release, people, team):
    give_duty(people["owner"], team, is_approver=True)
    status, sql = statements(
        client_for("owner"), "post", f"/api/v1/releases/{release.pk}/approve/", {"comment": "ok"}
    )
    assert status == 200
    assert sql[0] == "BEGIN" and sql[-1] == "COMMIT", sql
    assert sql.count("BEGIN") == 1


def test_a_refused_action_leaves_nothing(client_for, release):
    status, _ = statements(client_for("viewer"), "post", f"/api/v1/releases/{release.pk}/approve/")
    assert status in (403, 404)
    assert Release.objects.get(pk=release.pk).approvals.count() == 0
