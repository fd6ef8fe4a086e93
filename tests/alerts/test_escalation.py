"""Escalation: an alert is assigned at the instant it fires to the first step of the team's
policy that reaches somebody, moves up step by step and round by round while nobody
acknowledges it, waits out a silence, skips a schedule gap at once, and falls back to the
team's owners (then its on-call members) rather than to nobody. The clock is moved, not waited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts import escalation, lifecycle
from alerts.models import Alert, AlertEventKind, AlertSource, Delivery
from core import clock
from identity.audit import Actor
from tests.factories import (
    SYSTEM,
    MembershipFactory,
    TeamFactory,
    UserFactory,
    give_duty,
    layer_of,
    policy_of,
    schedule_of,
)
from tests.support.stopped_clock import stopped_clock

MINUTE = 60


@pytest.fixture(autouse=True)
def stopped(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, datetime(2025, 6, 2, 10, 0, tzinfo=UTC)):
        yield


@pytest.fixture
def crew(team, people) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """alice and bob on the primary rotation (alice's shift ends in an hour), sam secondary,
    and the team's owner (from `people`) last."""
    crew = dict(people)
    for name in ("alice", "bob", "sam"):
        crew[name] = UserFactory(username=name)
        MembershipFactory(team=team, user=crew[name], role="viewer")
    crew["primary"] = schedule_of(team, name="primary", time_zone="Europe/Berlin")
    layer_of(
        crew["primary"],
        [crew["alice"], crew["bob"]],
        name="daily",
        rotation_start=clock.now() - timedelta(hours=23),
    )
    return crew


@pytest.fixture
def policy(team, crew):  # type: ignore[no-untyped-def]
    return policy_of(
        team,
        [("schedule", crew["primary"], 10), ("user", crew["sam"], 15), ("team_owners", None, 5)],
        repeat=1,
    )


def fire(team, fingerprint: str = "slo_burn:1:stable") -> Alert:  # type: ignore[no-untyped-def]
    outcome = lifecycle.fire(
        lifecycle.Signal(
            team=team,
            source=AlertSource.RULE,
            fingerprint=fingerprint,
            rule="slo_burn",
            title="fraud: error budget burning fast",
            severity="critical",
        ),
        actor=SYSTEM,
    )
    return outcome.alert


def state(alert: Alert) -> tuple[str | None, int, int, bool]:
    alert.refresh_from_db()
    return (
        alert.assignee.username if alert.assignee else None,
        alert.escalation_step,
        alert.escalation_round,
        alert.next_escalation_at is not None,
    )


def moves(alert: Alert) -> list[tuple[str | None, str | None, int, int]]:
    return [
        (e.data["from"], e.data["to"], e.data["step"], e.data["round"])
        for e in alert.events.filter(kind=AlertEventKind.ESCALATED)
        if "from" in e.data
    ]


def wait(minutes: float) -> None:
    clock.advance(minutes * MINUTE)


def test_an_unacknowledged_alert_climbs_every_step_then_repeats_then_stays(team, crew, policy):
    alert = fire(team)
    fired_at = clock.now()
    assert state(alert) == ("alice", 0, 0, True)
    assert alert.escalation_policy == policy
    assert alert.next_escalation_at == fired_at + timedelta(minutes=10)
    assigned = alert.events.get(kind=AlertEventKind.ASSIGNED)
    assert "assigned to alice: step 1 of 3" in assigned.text
    assert assigned.data["to"] == "alice"

    wait(9)
    assert escalation.escalate_due() == 0  # not yet
    assert state(alert) == ("alice", 0, 0, True)

    expected = [
        (1, ("sam", 1, 0, True)),  # step 2: the secondary
        (15, ("owner", 2, 0, True)),  # step 3: the team's owners
        (5, ("alice", 0, 1, True)),  # the repeat: the on-call again
        (10, ("sam", 1, 1, True)),
        (15, ("owner", 2, 1, True)),
    ]
    for minutes, after in expected:
        wait(minutes)
        assert escalation.escalate_due() == 1
        assert state(alert) == after
    assert moves(alert) == [
        ("alice", "sam", 1, 0),
        ("sam", "owner", 2, 0),
        ("owner", "alice", 0, 1),
        ("alice", "sam", 1, 1),
        ("sam", "owner", 2, 1),
    ]

    wait(5)
    assert escalation.escalate_due() == 0  # nothing left to try: it stays with the owner
    assert state(alert) == ("owner", 2, 1, False)
    last = alert.events.filter(kind=AlertEventKind.ESCALATED).last()
    assert last.text == "escalation exhausted after 2 rounds; stays with owner"
    wait(60)
    assert escalation.escalate_due() == 0
    assert alert.events.filter(kind=AlertEventKind.ESCALATED).count() == 6

    # Each move told the step's people, once per change.
    assert set(Delivery.objects.filter(alert=alert).values_list("change", "user__username")) == {
        ("fired", "alice"),
        ("escalated:0:1:0", "sam"),
        ("escalated:0:2:0", "owner"),
        ("escalated:1:0:0", "alice"),
        ("escalated:1:1:0", "sam"),
        ("escalated:1:2:0", "owner"),
    }


def test_acknowledging_stops_escalation(team, crew, policy):
    alert = fire(team)
    wait(10)
    assert escalation.escalate_due() == 1
    assert state(alert) == ("sam", 1, 0, True)  # sam may answer now: he is the assignee
    lifecycle.acknowledge(actor=Actor.from_principal(crew["sam"]), alert=alert)
    wait(120)
    assert escalation.escalate_due() == 0
    assert state(alert) == ("sam", 1, 0, False)


def test_a_silence_defers_escalation_until_it_ends(team, crew, policy):
    alert = fire(team)
    lifecycle.silence(
        actor=Actor.from_principal(crew["owner"]),
        alert=alert,
        until=clock.now() + timedelta(minutes=30),
        reason="known, fixing",
    )
    wait(29)
    assert escalation.escalate_due() == 0
    assert state(alert) == ("alice", 0, 0, True)
    wait(1)
    assert escalation.escalate_due() == 1
    assert state(alert) == ("sam", 1, 0, True)


def test_a_silenced_alert_is_not_moved_even_when_its_wait_is_over(team, crew, policy):
    alert = fire(team)
    # A silence set behind the lifecycle's back (its wait left in the past) still holds.
    Alert.objects.filter(pk=alert.pk).update(silenced_until=clock.now() + timedelta(hours=1))
    wait(20)
    assert escalation.escalate_due() == 0
    assert state(alert) == ("alice", 0, 0, True)


def test_an_alert_fired_in_a_schedule_gap_goes_to_the_next_step_at_once(team, crew, policy):
    gappy = schedule_of(team, name="office")
    layer_of(gappy, [crew["alice"]], rotation_start=clock.now() + timedelta(hours=2))
    policy.steps.filter(position=0).update(schedule=gappy)
    alert = fire(team)
    assert state(alert) == ("sam", 1, 0, True)
    skipped, assigned = alert.events.filter(
        kind__in=[AlertEventKind.ESCALATED, AlertEventKind.ASSIGNED]
    )
    assert skipped.kind == AlertEventKind.ESCALATED
    assert skipped.text.startswith("step 1 reaches nobody: schedule office has a gap at ")
    assert skipped.text.endswith("; on to step 2")
    assert assigned.kind == AlertEventKind.ASSIGNED and assigned.data["to"] == "sam"
    assert alert.next_escalation_at == clock.now() + timedelta(minutes=15)

    # In the repeat, the gap is skipped again on the way round.
    wait(15)
    assert escalation.escalate_due() == 1
    wait(5)
    assert escalation.escalate_due() == 1
    assert state(alert) == ("sam", 1, 1, True)


def test_assignment_is_for_the_instant_the_alert_fires(team, crew, policy):
    first = fire(team, "drift:1:stable")
    assert state(first) == ("alice", 0, 0, True)
    wait(90)  # alice hands off to bob an hour after the first alert fired
    fire(team, "drift:1:stable")  # the same condition again: a refresh, not a new owner
    assert state(first)[0] == "alice"
    second = fire(team, "cost:1:stable")
    assert state(second) == ("bob", 0, 0, True)


def test_without_a_policy_the_team_owners_get_it(team, crew):
    alert = fire(team)
    assert state(alert) == ("owner", 0, 0, False)
    assigned = alert.events.get(kind=AlertEventKind.ASSIGNED)
    assert assigned.text == (
        "the team has no escalation policy with steps: assigned to owner (the team's owners)"
    )


def test_when_every_step_is_empty_the_owners_get_it_and_the_rounds_still_run(team, crew):
    gappy = schedule_of(team, name="later")
    layer_of(gappy, [crew["alice"]], rotation_start=clock.now() + timedelta(minutes=30))
    policy_of(team, [("schedule", gappy, 10)], repeat=1)
    alert = fire(team)
    assert state(alert) == ("owner", 0, 0, True)
    wait(30)  # the gap has ended: the repeat finds alice
    assert escalation.escalate_due() == 1
    assert state(alert) == ("alice", 0, 1, True)


def test_with_no_owner_the_members_on_call_get_it_and_else_nobody(db):
    team = TeamFactory(slug="lonely")
    dora = UserFactory(username="dora")
    MembershipFactory(team=team, user=dora, role="maintainer")
    nobody = fire(team, "a:1")
    assert state(nobody) == (None, 0, 0, False)
    assert "nobody to assign" in nobody.events.get(kind=AlertEventKind.ASSIGNED).text
    give_duty(dora, team, is_on_call=True)
    alert = fire(team, "b:1")
    assert state(alert) == ("dora", 0, 0, False)
    assert "(the team's members on call)" in alert.events.get(kind=AlertEventKind.ASSIGNED).text


def test_two_runs_at_one_instant_move_an_alert_once(team, crew, policy):
    alert = fire(team)
    wait(10)
    assert escalation.escalate_due() == 1
    assert escalation.escalate_due() == 0
    assert state(alert) == ("sam", 1, 0, True)
