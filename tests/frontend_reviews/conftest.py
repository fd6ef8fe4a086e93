"""Fixtures of the review pages: team "fraud"'s credit-scorer under a review policy (the
domain tests' `deployment`, and `other_deployment` of team "search"), two reviewers of the team
(rita, rob), a reviewer of the other team (oscar), one queued item, and the engine's clock
stopped on a Monday morning (deadlines and leases read it). The people of the shared `people`
fixture play the other roles: "viewer" is a member without the reviewer duty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from deployments.models import Deployment
from reviews.models import ReviewItem
from tests.factories import queued_item_of, reviewer_in
from tests.reviews.conftest import (  # noqa: F401 (fixtures shared with the domain's tests)
    deployment,
    other_deployment,
)
from tests.support.stopped_clock import stopped_clock

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def stopped(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def rita(team, people):  # type: ignore[no-untyped-def]
    return reviewer_in(team, "rita")


@pytest.fixture
def rob(team, people):  # type: ignore[no-untyped-def]
    return reviewer_in(team, "rob")


@pytest.fixture
def oscar(other_team, people):  # type: ignore[no-untyped-def]
    """A reviewer of the other team."""
    return reviewer_in(other_team, "oscar")


@pytest.fixture
def item(deployment: Deployment) -> ReviewItem:  # noqa: F811
    """A held, low-confidence item due in 3 h 30 min, with an explanation."""
    return queued_item_of(
        deployment,
        reason="low_confidence",
        sla_deadline=T0 + timedelta(hours=3, minutes=30),
        explanation={"top_features": {"income": -0.31, "region": 0.05}},
    )


@pytest.fixture
def browser_as() -> Callable[[Any], Client]:
    """browser_as(user) -> a Django test Client with that user's session."""

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
