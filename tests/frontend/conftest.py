"""Fixtures for the portal page tests: browsers logged in as each person of `people`, and a
model of `team` with versions and an alias."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from identity.audit import Actor
from registry import services
from registry.models import RegisteredModel
from tests.factories import ModelVersionFactory, RegisteredModelFactory


@pytest.fixture
def browser_for(people) -> Callable[[str], Client]:  # type: ignore[no-untyped-def]
    """browser_for("owner") -> a Django test Client with that person's session."""

    def make(who: str) -> Client:
        client = Client()
        if who != "anonymous":
            client.force_login(people[who])
        return client

    return make


@pytest.fixture
def scorer(team, people) -> RegisteredModel:  # type: ignore[no-untyped-def]
    """`fraud-scorer` of `team`: v1 and v2, with @champion on v1 (set through the service)."""
    model = RegisteredModelFactory(
        name="fraud-scorer", team=team, description="Scores card payments.", tags=["payments"]
    )
    ModelVersionFactory(model=model, number=1, created_by=people["maintainer"])
    ModelVersionFactory(model=model, number=2, created_by=people["maintainer"])
    services.alias_set(
        actor=Actor.from_principal(people["owner"]), model=model, name="champion", version_number=1
    )
    return model
