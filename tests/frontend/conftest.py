"""Fixtures for the portal page tests: a model of `team` with versions and an alias (browsers
for each person are `browser_for`, in tests/conftest.py)."""

from __future__ import annotations

import pytest

from identity.audit import Actor
from registry import services
from registry.models import RegisteredModel
from tests.factories import ModelVersionFactory, RegisteredModelFactory


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
