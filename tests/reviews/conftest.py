"""Fixtures of the review tests: a deployment of team "fraud" running under a review policy, a
reviewer of that team, a valid submission body, and the engine's clock put back after every
test (deadlines and leases are read from it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import clock
from deployments.models import Deployment
from identity.audit import Actor
from reviews.models import ReviewItem
from tests.factories import review_deployment_of, reviewer_in, submission_body

# Low-confidence predictions are held for a person, due within 4 hours.
POLICY = {"mode": "held", "confidence_below": 0.7, "sla_minutes": 240, "claim_minutes": 30}


@pytest.fixture(autouse=True)
def engine_clock() -> Iterator[None]:
    """Tests move or stop the engine's clock; the next test starts from real time."""
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def deployment(team) -> Deployment:  # type: ignore[no-untyped-def]
    """credit-scorer in production, version 1 stable, under POLICY."""
    return review_deployment_of(team, policy=POLICY)


@pytest.fixture
def other_deployment(other_team) -> Deployment:  # type: ignore[no-untyped-def]
    """A deployment of team "search" under the same policy."""
    return review_deployment_of(other_team, name="search-ranker", policy=POLICY)


@pytest.fixture
def reviewer(team, people):  # type: ignore[no-untyped-def]
    """rita: a viewer of "fraud" with the reviewer duty."""
    return reviewer_in(team, "rita")


@pytest.fixture
def body(deployment) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return submission_body(deployment)


@pytest.fixture
def alice(team):  # type: ignore[no-untyped-def]
    """A viewer of "fraud" with the reviewer duty."""
    return reviewer_in(team, "alice")


@pytest.fixture
def bob(team):  # type: ignore[no-untyped-def]
    """Another reviewer of "fraud": the second reviewer of an appeal."""
    return reviewer_in(team, "bob")


def as_(user) -> Actor:  # type: ignore[no-untyped-def]
    return Actor.from_principal(user)


def kinds(item: ReviewItem) -> list[str]:
    """The kinds of the item's history, in order."""
    return list(item.events.order_by("created_at", "id").values_list("kind", flat=True))


def fresh(item: ReviewItem) -> ReviewItem:
    return ReviewItem.objects.get(pk=item.pk)
