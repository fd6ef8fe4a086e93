"""Concurrent claimers (reviews.claims.claim_next) on PostgreSQL: N reviewers, each on a database
connection of their own, ask for the next item at the same instant. No item is ever held by two
of them, every item handed out is distinct, and the counts add up: with fewer items than
claimers every item is taken once (SKIP LOCKED passes over a row being claimed instead of giving
up behind it), and claimers who keep asking drain the queue exactly.

Each claim holds its row lock a little longer than the real work takes (a sleep inside `take`),
so that the claimers truly overlap instead of finishing one after another."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction

from core import clock
from identity.audit import Actor
from reviews import claims
from reviews.models import ReviewEventKind, ReviewItem, ReviewStatus
from tests.factories import (
    QUEUE_POLICY,
    TeamFactory,
    queued_item_of,
    review_deployment_of,
    reviewer_in,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and SKIP LOCKED need PostgreSQL"
    ),
]

CLAIMERS = 8
HOLD_SECONDS = 0.05


@pytest.fixture
def slow_take(monkeypatch):  # type: ignore[no-untyped-def]
    """Each claim keeps its row locked a while before it writes: the others must pass it by."""
    take = claims.take

    def slow(item: ReviewItem, actor: Actor, now: Any) -> ReviewItem:
        time.sleep(HOLD_SECONDS)
        return take(item, actor, now)

    monkeypatch.setattr(claims, "take", slow)


@pytest.fixture
def queue():  # type: ignore[no-untyped-def]
    """A team with CLAIMERS reviewers and a deployment; items are added by each test."""
    team = TeamFactory(slug="loans")
    names = [f"reviewer{i}" for i in range(CLAIMERS)]
    for name in names:
        reviewer_in(team, name)
    return review_deployment_of(team, policy=QUEUE_POLICY), names


def run_claimers(names: list[str], *, until_empty: bool) -> dict[str, list[int]]:
    """Every claimer calls claim_next at the same instant (once, or until nothing is left), each
    in its own thread with its own connection; returns the item ids each one got."""
    start = threading.Barrier(len(names))
    got: dict[str, list[int]] = {name: [] for name in names}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            user = get_user_model().objects.get(username=name)  # this thread's own copy
            actor = Actor.from_principal(user)
            start.wait(timeout=30)
            while True:
                item = claims.claim_next(actor=actor)
                if item is None:
                    return
                got[name].append(item.pk)
                if not until_empty:
                    return
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a claimer hung"
    assert errors == []
    return got


def assert_held_once(got: dict[str, list[int]]) -> list[int]:
    """No item went to two claimers, and each is held by the claimer that got it."""
    handed_out = [pk for pks in got.values() for pk in pks]
    assert len(handed_out) == len(set(handed_out)), Counter(handed_out).most_common(3)
    holders = dict(
        ReviewItem.objects.filter(pk__in=handed_out).values_list("pk", "claimed_by__username")
    )
    for name, pks in got.items():
        for pk in pks:
            assert holders[pk] == name
    claimed = ReviewItem.objects.filter(pk__in=handed_out)
    assert all(item.events.filter(kind=ReviewEventKind.CLAIMED).count() == 1 for item in claimed), (
        "an item was claimed twice"
    )
    return handed_out


def test_more_claimers_than_items_each_item_goes_to_exactly_one(queue, slow_take):
    deployment, names = queue
    items = [
        queued_item_of(deployment, sla_deadline=clock.now() + timedelta(minutes=i))
        for i in range(5)
    ]
    got = run_claimers(names, until_empty=False)
    handed_out = assert_held_once(got)
    assert sorted(handed_out) == sorted(item.pk for item in items)
    assert sum(1 for pks in got.values() if not pks) == CLAIMERS - len(items)
    assert ReviewItem.objects.filter(status=ReviewStatus.CLAIMED).count() == len(items)


def test_claimers_that_keep_asking_drain_the_queue_exactly(queue, slow_take):
    deployment, names = queue
    items = [
        queued_item_of(deployment, sla_deadline=clock.now() + timedelta(minutes=i))
        for i in range(3 * CLAIMERS + 1)
    ]
    got = run_claimers(names, until_empty=True)
    handed_out = assert_held_once(got)
    assert sorted(handed_out) == sorted(item.pk for item in items)
    assert not ReviewItem.objects.filter(status=ReviewStatus.PENDING).exists()
    assert sum(1 for pks in got.values() if pks) > 1, "the claimers did not overlap"


def test_a_claimer_passes_over_a_row_being_claimed_instead_of_waiting(queue):
    """Another reviewer's claim holds the earliest item's row lock for a while: claim_next hands
    out the next item at once (SKIP LOCKED), rather than waiting for the lock and then
    finding the earliest item taken."""
    deployment, names = queue
    first = queued_item_of(deployment, sla_deadline=clock.now() + timedelta(minutes=1))
    second = queued_item_of(deployment, sla_deadline=clock.now() + timedelta(minutes=2))
    locked, done = threading.Event(), threading.Event()

    def hold_first() -> None:
        try:
            with transaction.atomic():
                ReviewItem.objects.select_for_update().get(pk=first.pk)
                locked.set()
                done.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_first)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        actor = Actor.from_principal(get_user_model().objects.get(username=names[0]))
        began = time.monotonic()
        assert claims.claim_next(actor=actor) == second
        assert time.monotonic() - began < 2.0
    finally:
        done.set()
        holder.join(timeout=30)
    assert ReviewItem.objects.get(pk=first.pk).status == ReviewStatus.PENDING
