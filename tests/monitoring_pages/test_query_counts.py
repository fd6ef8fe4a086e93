"""The monitoring overview in the query-count ratchet (tests/query_counts.json) with every other
page: flat as deployments grow (1 vs 50: two pages of cards, a third of them failing, so the
open-alert lookup has work) and within the recorded number. After a change that lowers it,
record it with UPDATE_QUERY_COUNTS=1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from deployments.models import Deployment
from tests.monitoring_pages.conftest import demo_deployment, make_environment
from tests.monitoring_pages.test_pages import scraped
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries


def grow_overview(ctx: dict[str, Any], n: int) -> str:
    if "environment" not in ctx:
        ctx["environment"] = make_environment("demo", "local")
    environment = ctx["environment"]
    for i in range(Deployment.objects.filter(environment=environment).count(), n):
        name = f"model-{i:03d}"
        demo_deployment(ctx["team"], environment, {}, model_name=name)
        scraped(name, 10, 10 if i % 3 == 0 else 0)
    return "/monitoring/"


PAGES: dict[str, Callable[[dict[str, Any], int], str]] = {"monitoring": grow_overview}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_query_count_is_flat_and_within_the_ratchet(page, browser_for, team, people):
    ctx: dict[str, Any] = {"team": team, "people": people}
    client = browser_for("owner")
    small = count_queries(client, PAGES[page](ctx, SMALL))
    large = count_queries(client, PAGES[page](ctx, LARGE))
    check_ratchet(page, small, large)
