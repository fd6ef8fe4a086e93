"""Fixtures for the monitoring API tests: an environment read by the local scrape source (no
Prometheus needed) and deployments of fresh models built through the real services."""

from __future__ import annotations

from typing import Any

import pytest

from deployments.models import Deployment, Environment, ReleaseState
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environment_of,
    put_in_state,
    release_of,
)


@pytest.fixture
def local_env(db) -> Environment:  # type: ignore[no-untyped-def]
    return environment_of("demo", metrics_kind="local")


def serving(team: Any, environment: Environment, name: str, *, canary_by: Any = None) -> Deployment:
    """`name` v1 stable in `environment`; with `canary_by=<user>`, a canary release of v2 that
    is rolling out."""
    model = RegisteredModelFactory(name=name, team=team)
    v1, v2 = (ModelVersionFactory(model=model, number=n) for n in (1, 2))
    deployment = deployment_of(model, environment, stable=v1)
    if canary_by is not None:
        put_in_state(release_of(deployment, v2, canary_by), ReleaseState.PROGRESSING)
    return deployment
