"""The deployments API's list and detail endpoints keep a flat query count as data grows (1 vs
50 objects), within the numbers recorded in tests/query_counts.json, the ratchet the pages and
the other APIs share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deployments.models import Deployment, Environment, Release, ReleaseStep
from tests.factories import (
    SYSTEM,
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environment_of,
    release_of,
)
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries


def _deployments(ctx: dict[str, Any], n: int) -> str:
    for i in range(Deployment.objects.count(), n):
        deployment_of(RegisteredModelFactory(name=f"m-{i:02d}", team=ctx["team"]), ctx["envs"][0])
    return "/api/v1/deployments/"


def _releases(ctx: dict[str, Any], n: int) -> str:
    for i in range(Release.objects.count(), n):
        deployment = deployment_of(
            RegisteredModelFactory(name=f"r-{i:02d}", team=ctx["team"]), ctx["envs"][0]
        )
        release_of(deployment, ModelVersionFactory(model=deployment.model, number=1), ctx["by"])
    return "/api/v1/releases/"


def _environments(ctx: dict[str, Any], n: int) -> str:
    for i in range(Environment.objects.count(), n):
        environment_of(f"env-{i:02d}")
    return "/api/v1/environments/"


def _deployment_detail(ctx: dict[str, Any], n: int) -> str:
    deployment = ctx["deployment"]
    for _ in range(deployment.releases.count(), n):  # past releases pile up
        release = release_of(deployment, ctx["versions"][3], ctx["by"])
        Release.objects.filter(pk=release.pk).update(state="aborted")
    return f"/api/v1/deployments/{deployment.pk}/"


def _release_detail(ctx: dict[str, Any], n: int) -> str:
    if "release" not in ctx:
        ctx["release"] = release_of(ctx["deployment"], ctx["versions"][3], ctx["by"])
    release = ctx["release"]
    for i in range(release.steps.count(), n):
        ReleaseStep.objects.create(
            release=release, kind="note", outcome="done", actor_label=SYSTEM.label, reason=f"{i}"
        )
    return f"/api/v1/releases/{release.pk}/"


ENDPOINTS: dict[str, Callable[[dict[str, Any], int], str]] = {
    "GET /api/v1/deployments/": _deployments,
    "GET /api/v1/releases/": _releases,
    "GET /api/v1/environments/": _environments,
    "GET /api/v1/deployments/{id}/": _deployment_detail,
    "GET /api/v1/releases/{id}/": _release_detail,
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_the_query_count_does_not_grow_with_the_data(
    endpoint, client_for, team, people, envs, deployment, versions
):
    ctx: dict[str, Any] = {
        "team": team,
        "envs": envs,
        "deployment": deployment,
        "versions": versions,
        "by": people["maintainer"],
    }
    client = client_for("owner")
    url = ENDPOINTS[endpoint](ctx, SMALL)
    count_queries(client, url)  # warm per-process caches (content types), as a server has them
    small = count_queries(client, url)
    url = ENDPOINTS[endpoint](ctx, LARGE)
    large = count_queries(client, url)
    check_ratchet(endpoint, small, large)
