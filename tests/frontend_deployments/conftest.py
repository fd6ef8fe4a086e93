"""Fixtures for the deployment and release pages: the same data as the API tests (staging and
production, `fraud-detector` v1..v3 deployed in production with v2 stable), and browsers."""

from __future__ import annotations

from tests.deployments_api.conftest import (  # noqa: F401 (fixtures shared with the API tests)
    deployment,
    envs,
    model,
    production,
    versions,
)
