"""Query counts of the review pages stay flat as items grow (1 vs 50: claimed by several people,
appeals, breaches, decisions, a long history) and within tests/query_counts.json (the ratchet of
every page). The queue's other tabs must stay flat and within the queue's number. After a change
that lowers a count, record it with UPDATE_QUERY_COUNTS=1 (this file only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from core import clock
from identity.audit import Actor
from reviews import appeals, claims
from reviews.models import ReviewEvent, ReviewEventKind, ReviewItem
from tests.factories import decided_item_of, queued_item_of
from tests.frontend_reviews.conftest import T0
from tests.support.query_counts import LARGE, SMALL, check_ratchet, count_queries, recorded_counts

TESTS = Actor.system("tests")


def _grow_open(ctx: dict[str, Any], n: int, first: int) -> None:
    """Open items of every kind in turn, from kind `first` (so that one item already fills the
    tab measured, whose page would otherwise skip its rows' query): held by rita, an appeal,
    held by rob, free; deadlines from an hour overdue on."""
    deployment, rita, rob = ctx["deployment"], ctx["rita"], ctx["rob"]
    for i in range(ReviewItem.objects.count(), n):
        kind = (i + first) % 4
        if kind == 1:
            done = decided_item_of(deployment, rob, sla_deadline=T0 + timedelta(minutes=i))
            appeals.appeal(actor=TESTS, item=done, statement=f"statement {i}")
            continue
        item = queued_item_of(
            deployment,
            sla_deadline=T0 + timedelta(minutes=i * 7 - 60),
            track=("stable", "canary")[i % 2],
        )
        if kind in (0, 2):
            claims.claim(actor=Actor.from_principal(rita if kind == 0 else rob), item=item)


def grow_queue(ctx: dict[str, Any], n: int) -> str:
    _grow_open(ctx, n, first=3)
    return "/reviews/"


def grow_mine(ctx: dict[str, Any], n: int) -> str:
    _grow_open(ctx, n, first=0)
    return "/reviews/?view=mine"


def grow_appeals(ctx: dict[str, Any], n: int) -> str:
    _grow_open(ctx, n, first=1)
    return "/reviews/?view=appeals"


def grow_decided(ctx: dict[str, Any], n: int) -> str:
    deployment, rob = ctx["deployment"], ctx["rob"]
    for i in range(ReviewItem.objects.count(), n):
        if i % 2:
            decided_item_of(deployment, rob, decision="override", output={"label": "approved"})
        else:
            decided_item_of(deployment, ctx["rita"])
    return "/reviews/?view=decided"


def grow_item(ctx: dict[str, Any], n: int) -> str:
    """One appealed item whose history grows: claims, releases, breaches, callbacks."""
    if "item" not in ctx:
        done = decided_item_of(
            ctx["deployment"],
            ctx["rob"],
            explanation={"top_features": {"income": -0.31}},
        )
        appeals.appeal(actor=TESTS, item=done, statement="please look again")
        claims.claim(actor=Actor.from_principal(ctx["rita"]), item=done)
        ctx["item"] = done
    item = ctx["item"]
    people = (ctx["rita"], ctx["rob"], None)
    for i in range(item.events.count(), n):
        who = people[i % 3]
        ReviewEvent.objects.create(
            item=item,
            kind=(ReviewEventKind.CLAIMED, ReviewEventKind.RELEASED, ReviewEventKind.CALLBACK)[
                i % 3
            ],
            level=2,
            actor=who,
            actor_label=who.username if who else "system:tests",
            detail={"n": i, "until": (clock.now() + timedelta(minutes=i)).isoformat()},
        )
    return f"/reviews/{item.ref}/"


PAGES: dict[str, Callable[[dict[str, Any], int], str]] = {
    "reviews": grow_queue,
    "review-detail": grow_item,
}
OTHER_TABS: dict[str, Callable[[dict[str, Any], int], str]] = {
    "mine": grow_mine,
    "appeals": grow_appeals,
    "decided": grow_decided,
}


@pytest.fixture
def ctx(team, deployment, rita, rob) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"team": team, "deployment": deployment, "rita": rita, "rob": rob}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_page_query_count_is_flat_and_within_the_ratchet(page, ctx, browser_as):
    client = browser_as(ctx["rita"])
    small = count_queries(client, PAGES[page](ctx, SMALL))
    large = count_queries(client, PAGES[page](ctx, LARGE))
    check_ratchet(page, small, large)


@pytest.mark.parametrize("tab", sorted(OTHER_TABS))
def test_every_tab_of_the_queue_is_flat_and_within_the_queues_number(tab, ctx, browser_as):
    client = browser_as(ctx["rita"])
    small = count_queries(client, OTHER_TABS[tab](ctx, SMALL))
    large = count_queries(client, OTHER_TABS[tab](ctx, LARGE))
    assert small == large, f"{tab}: {small} queries with {SMALL} item, {large} with {LARGE}"
    assert large <= recorded_counts()["reviews"]
