"""API list and detail endpoints of the registry and identity keep a flat query count as data
grows, and within the numbers recorded in tests/query_counts.json (the pages' ratchet)."""

from __future__ import annotations

import pytest

from identity.audit import Actor
from registry import services
from registry.models import RegisteredModel
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries


def grow(team, n: int) -> None:  # type: ignore[no-untyped-def]
    model = RegisteredModel.objects.filter(name="fraud-detector").first() or (
        RegisteredModelFactory(team=team, name="fraud-detector")
    )
    existing = model.versions.count()
    for number in range(existing + 1, n + 1):
        version = ModelVersionFactory(model=model, number=number, tags=["a"])
        services.alias_set(
            actor=Actor.system("t"), model=model, name=f"a{number}", version_number=version.number
        )
    for i in range(RegisteredModel.objects.count(), n):
        RegisteredModelFactory(team=team, name=f"m-{i}")


ENDPOINTS = [
    "/api/v1/models/",
    "/api/v1/models/fraud-detector/",
    "/api/v1/models/fraud-detector/versions/",
    "/api/v1/models/fraud-detector/versions/1/",
    "/api/v1/models/fraud-detector/aliases/",
    "/api/v1/audit-events/",
    "/api/v1/teams/",
    "/api/v1/teams/fraud/members/",
]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_the_query_count_does_not_grow_with_the_data(client_for, team, url):
    client = client_for("owner")
    grow(team, SMALL)
    count_queries(client, url)  # warm per-process caches (content types), as a server has them
    small = count_queries(client, url)
    grow(team, LARGE)
    large = count_queries(client, url)
    check_ratchet(f"GET {url}", small, large)
