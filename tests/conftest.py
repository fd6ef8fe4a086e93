"""Shared fixtures: people in each role of one team, and API clients and browsers acting as
them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, TeamFactory, UserFactory, make_token


@pytest.fixture
def team(db):  # type: ignore[no-untyped-def]
    return TeamFactory(slug="fraud")


@pytest.fixture
def other_team(db):  # type: ignore[no-untyped-def]
    return TeamFactory(slug="search")


@pytest.fixture
def people(team, other_team):  # type: ignore[no-untyped-def]
    """One user per role in `team`, an outsider (member of another team) and a superuser."""
    users = {}
    for role in ("owner", "maintainer", "viewer"):
        users[role] = UserFactory(username=role)
        MembershipFactory(team=team, user=users[role], role=role)
    users["outsider"] = UserFactory(username="outsider")
    MembershipFactory(team=other_team, user=users["outsider"], role="owner")
    users["admin"] = UserFactory(username="admin", is_superuser=True, is_staff=True)
    return users


@pytest.fixture
def client_for(people, team) -> Callable[[str], APIClient]:  # type: ignore[no-untyped-def]
    """client_for("maintainer") -> APIClient logged in as that user; client_for("token:write")
    -> APIClient with a Bearer token of `team` with that scope; "anonymous" -> no credentials."""

    def make(who: str) -> APIClient:
        client = APIClient()
        if who == "anonymous":
            return client
        if who.startswith("token:"):
            _, secret = make_token(team, who.split(":", 1)[1].split("+"))
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
            return client
        client.force_authenticate(people[who])
        return client

    return make


@pytest.fixture
def browser_for(people) -> Callable[[str], Client]:  # type: ignore[no-untyped-def]
    """browser_for("owner") -> a Django test Client with that person's session."""

    def make(who: str) -> Client:
        client = Client()
        if who != "anonymous":
            client.force_login(people[who])
        return client

    return make
