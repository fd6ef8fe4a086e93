"""Query counts of the deployment and release pages stay flat as data grows (1 object vs 50)
and within the numbers recorded in tests/query_counts.json (the same ratchet as the registry
pages). After a change that lowers a count, record it with UPDATE_QUERY_COUNTS=1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments.models import Approval, Release, ReleaseState, ReleaseStep, Rollback
from tests.factories import (
    MembershipFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environments,
    put_in_state,
    release_of,
)
from tests.support.query_counts import (
    LARGE,
    SMALL,
    check_ratchet,
    count_queries,
)


def base(ctx: dict[str, Any]) -> Any:
    """The production deployment of `scorer` (v1 stable), built once per test."""
    if "deployment" not in ctx:
        ctx["staging"], ctx["production"] = environments()
        model = RegisteredModelFactory(name="scorer", team=ctx["team"])
        ctx["versions"] = [ModelVersionFactory(model=model, number=n) for n in (1, 2)]
        ctx["deployment"] = deployment_of(
            model, ctx["production"], stable=ctx["versions"][1], previous=ctx["versions"][0]
        )
    return ctx["deployment"]


def _deployment_with_release(ctx: dict[str, Any], i: int) -> Release:
    model = RegisteredModelFactory(name=f"model-{i:03d}", team=ctx["team"])
    version = ModelVersionFactory(model=model, number=1)
    deployment = deployment_of(model, ctx["staging"])
    return release_of(deployment, version, ctx["people"]["maintainer"])


def grow_overview(ctx: dict[str, Any], n: int) -> str:
    base(ctx)
    for i in range(Release.objects.count(), n):
        put_in_state(_deployment_with_release(ctx, i), ReleaseState.PROGRESSING)
    return "/deployments/"


def grow_releases(ctx: dict[str, Any], n: int) -> str:
    base(ctx)
    for i in range(Release.objects.count(), n):
        _deployment_with_release(ctx, i)
    return "/releases/"


def grow_deployment_detail(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    v1, v2 = ctx["versions"]
    for _ in range(deployment.rollbacks.count(), n):
        Rollback.objects.create(deployment=deployment, to_version=v1, actor_label="owner")
        Release.objects.create(
            deployment=deployment,
            version=v2,
            from_version=v1,
            config=deployment.config,
            strategy="canary",
            state=ReleaseState.PROMOTED,
            author_label="owner",
        )
    return f"/deployments/{deployment.pk}/"


ANALYSIS_WINDOW = {
    "weight": 10,
    "stable": {"version": 2},
    "canary": {"version": 3},
    "stable_stats": {"requests": 900.0, "error_rate": 0.002, "latency_p95": 0.12},
    "canary_stats": {"requests": 100.0, "error_rate": 0.003, "latency_p95": 0.13},
    "slo_checks": {"error_rate": {"verdict": "pass", "value": 0.003, "limit": 0.01}},
    "drift": {"status": "ok", "psi_max": 0.05, "thresholds": {"alert": 0.25}},
}


def grow_release_detail(ctx: dict[str, Any], n: int) -> str:
    deployment = base(ctx)
    if "release" not in ctx:
        ctx["release"] = release_of(
            deployment,
            ModelVersionFactory(model=deployment.model, number=3),
            ctx["people"]["owner"],
        )
    release = ctx["release"]
    for i in range(release.approvals.count(), n):
        approver = get_user_model().objects.create(username=f"approver-{i:03d}")
        MembershipFactory(team=ctx["team"], user=approver, role="viewer", is_approver=True)
        Approval.objects.create(release=release, user=approver, decision="approve")
        ReleaseStep.objects.create(
            release=release, kind="approval", outcome="ok", actor_label=approver.username
        )
        # One analysis window more: the stages, the charts and the timeline grow with it.
        ReleaseStep.objects.create(
            release=release,
            kind="analysis",
            plan_index=10,
            outcome="inconclusive",
            actor_label="system:release-engine",
            evidence=ANALYSIS_WINDOW,
        )
    return f"/releases/{release.pk}/"


PAGES: dict[str, Callable[[dict[str, Any], int], str]] = {
    "deployments": grow_overview,
    "deployment-detail": grow_deployment_detail,
    "releases": grow_releases,
    "release-detail": grow_release_detail,
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_query_count_is_flat_and_within_the_ratchet(page, browser_for, team, people):
    ctx: dict[str, Any] = {"team": team, "people": people}
    client = browser_for("owner")
    small = count_queries(client, PAGES[page](ctx, SMALL))
    large = count_queries(client, PAGES[page](ctx, LARGE))
    check_ratchet(page, small, large)


# The poll answer is lighter than the page (no releases, rollbacks, versions or config history).
LIVE_PART_QUERIES = 9


def test_the_live_part_of_the_deployment_page_stays_flat(browser_for, team, people):
    """What the deployment page polls every 2 s while a rollback is under way: one newest
    rollback, however many came before it."""
    ctx: dict[str, Any] = {"team": team, "people": people}
    client = browser_for("owner")
    counts = []
    for n in (SMALL, LARGE):
        url = grow_deployment_detail(ctx, n)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and b'id="deployment-live"' in response.content
        counts.append(len(queries))
    assert counts[0] == counts[1] <= LIVE_PART_QUERIES, counts
