"""Fixtures for the deployments API tests: staging and production environments, the team's
`fraud-detector` with three versions, and its production deployment serving v2 (v1 before)."""

from __future__ import annotations

import pytest

from deployments.models import Deployment, Environment
from registry.models import ModelVersion, RegisteredModel
from tests.factories import ModelVersionFactory, RegisteredModelFactory, deployment_of, environments


@pytest.fixture
def envs(db) -> tuple[Environment, Environment]:  # type: ignore[no-untyped-def]
    return environments()


@pytest.fixture
def production(envs) -> Environment:  # type: ignore[no-untyped-def]
    return envs[1]


@pytest.fixture
def model(team) -> RegisteredModel:  # type: ignore[no-untyped-def]
    return RegisteredModelFactory(name="fraud-detector", team=team, risk_tier="medium")


@pytest.fixture
def versions(model) -> dict[int, ModelVersion]:  # type: ignore[no-untyped-def]
    return {n: ModelVersionFactory(model=model, number=n) for n in (1, 2, 3)}


@pytest.fixture
def deployment(model, versions, production) -> Deployment:  # type: ignore[no-untyped-def]
    return deployment_of(model, production, stable=versions[2], previous=versions[1])
