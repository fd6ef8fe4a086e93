"""API list and detail endpoints of the registry keep a flat query count as data grows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ModelVersionFactory, RegisteredModelFactory


def count(client, url: str) -> int:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:200])
    return len(queries)


def grow(team, n: int) -> None:  # type: ignore[no-untyped-def]
    from identity.audit import Actor
    from registry import services
    from registry.models import RegisteredModel

    model = RegisteredModel.objects.filter(name="fraud-detector").first() or (
        RegisteredModelFactory(team=team, name="fraud-detector")
    )
    existing = model.versions.count()
    for number in range(existing + 1, n + 1):
        version = ModelVersionFactory(model=model, number=number, tags=["a"])
        services.alias_set(
            actor=Actor.system("t"), model=model, name=f"a{number}", version_number=version.number
        )
    for i in range(RegisteredModelFactory._meta.model.objects.count(), n):
        RegisteredModelFactory(team=team, name=f"m-{i}")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/models/",
        "/api/v1/models/fraud-detector/",
        "/api/v1/models/fraud-detector/versions/",
        "/api/v1/models/fraud-detector/versions/1/",
        "/api/v1/models/fraud-detector/aliases/",
        "/api/v1/audit-events/",
        "/api/v1/teams/",
        "/api/v1/teams/fraud/members/",
    ],
)
def test_the_query_count_does_not_grow_with_the_data(client_for, team, url):
    client = client_for("owner")
    grow(team, 1)
    count(client, url)  # warm per-process caches (content types), as a running server has them
    small = count(client, url)
    grow(team, 50)
    large = count(client, url)
    assert small == large, f"{url}: {small} queries with 1 object, {large} with 50"
