"""Who is on call: rotations counted in local days across daylight-saving changes, weekly
rotations, overrides and higher layers that win, daily windows that leave gaps, and the shift
now and next. Pure computation over a schedule's rows: no clock, no query once prefetched."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts import oncall
from alerts.models import Schedule
from tests.factories import UserFactory, layer_of, override_of, schedule_of

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def alice(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="bob")


@pytest.fixture
def carol(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="carol")


def office_hours(schedule: Schedule, user: Any, position: int = 0) -> None:
    """`user` on call 09:00-17:00 local every day, nobody else."""
    layer_of(
        schedule,
        [user],
        name="office",
        position=position,
        rotation_start=utc(2025, 1, 1),
        active_from=time(9),
        active_until=time(17),
    )


@pytest.fixture
def daily_berlin(team, alice, bob) -> Schedule:  # type: ignore[no-untyped-def]
    """alice and bob take turns, handing off at 09:00 in Berlin, from Friday 28 March 2025."""
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    layer_of(schedule, [alice, bob], name="daily", rotation_start=berlin(2025, 3, 28, 9))
    return schedule


def test_a_daily_handoff_stays_at_nine_local_across_the_march_change(daily_berlin, alice, bob):
    # Sunday 30 March 2025, 02:00 CET -> 03:00 CEST: that day's shift is 23 hours.
    got = oncall.shifts(daily_berlin, utc(2025, 3, 28, 8), utc(2025, 3, 31, 7))
    assert [(s.start, s.end, s.users, s.source) for s in got] == [
        (utc(2025, 3, 28, 8), utc(2025, 3, 29, 8), (alice,), "layer:daily"),  # 09:00 CET
        (utc(2025, 3, 29, 8), utc(2025, 3, 30, 7), (bob,), "layer:daily"),  # to 09:00 CEST
        (utc(2025, 3, 30, 7), utc(2025, 3, 31, 7), (alice,), "layer:daily"),
    ]
    assert [s.end - s.start for s in got] == [24 * HOUR, 23 * HOUR, 24 * HOUR]
    assert all(s.start.astimezone(BERLIN).time() == time(9) for s in got)
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 30, 8, 59)) == [bob]
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 30, 9, 0)) == [alice]


def test_a_daily_handoff_stays_at_nine_local_across_the_october_change(daily_berlin, alice, bob):
    # Sunday 26 October 2025, 03:00 CEST -> 02:00 CET: the shift over it is 25 hours.
    got = oncall.shifts(daily_berlin, utc(2025, 10, 25, 7), utc(2025, 10, 27, 8))
    assert [(s.start, s.end) for s in got] == [
        (utc(2025, 10, 25, 7), utc(2025, 10, 26, 8)),  # 09:00 CEST -> 09:00 CET
        (utc(2025, 10, 26, 8), utc(2025, 10, 27, 8)),
    ]
    assert [s.end - s.start for s in got] == [25 * HOUR, 24 * HOUR]
    # 211 days after the rotation began: an odd day, bob's; the turns still alternate.
    assert [s.users for s in got] == [(bob,), (alice,)]
    assert oncall.on_call_at(daily_berlin, berlin(2025, 10, 26, 8, 59)) == [bob]
    assert oncall.on_call_at(daily_berlin, berlin(2025, 10, 26, 9, 0)) == [alice]


def test_shifts_that_are_not_whole_days_count_elapsed_hours(team, alice, bob):
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    layer_of(schedule, [alice, bob], shift_hours=12, rotation_start=berlin(2025, 3, 29, 21))
    got = oncall.shifts(schedule, utc(2025, 3, 29, 20), utc(2025, 3, 30, 20))
    # 21:00 CET + 12 h = 10:00 CEST: twelve hours each, whatever the wall clock says.
    assert [(s.start, s.users) for s in got] == [
        (utc(2025, 3, 29, 20), (alice,)),
        (utc(2025, 3, 30, 8), (bob,)),
    ]
    assert got[0].end - got[0].start == 12 * HOUR


def test_a_weekly_rotation_takes_turns_in_member_order(team, alice, bob, carol):
    schedule = schedule_of(team)
    monday = utc(2025, 1, 6, 10)
    layer_of(schedule, [alice, bob, carol], shift_hours=168, rotation_start=monday)
    week = timedelta(days=7)
    seen = [oncall.on_call_at(schedule, monday + n * week) for n in range(4)]
    assert seen == [[alice], [bob], [carol], [alice]]
    assert oncall.on_call_at(schedule, monday + 3 * week - timedelta(microseconds=1)) == [carol]
    assert oncall.on_call_at(schedule, monday - timedelta(seconds=1)) == []  # before it began
    got = oncall.shifts(schedule, monday, monday + 3 * week)
    assert [(s.start, s.end - s.start, s.users) for s in got] == [
        (monday, week, (alice,)),
        (monday + week, week, (bob,)),
        (monday + 2 * week, week, (carol,)),
    ]


def test_an_override_wins_over_the_rotation(daily_berlin, alice, carol):
    # alice has Friday 28 March; carol covers 12:00-15:00 Berlin.
    override_of(daily_berlin, carol, berlin(2025, 3, 28, 12), berlin(2025, 3, 28, 15))
    got = oncall.shifts(daily_berlin, berlin(2025, 3, 28, 9), berlin(2025, 3, 29, 9))
    assert [(s.start, s.end, s.users, s.source) for s in got] == [
        (utc(2025, 3, 28, 8), utc(2025, 3, 28, 11), (alice,), "layer:daily"),
        (utc(2025, 3, 28, 11), utc(2025, 3, 28, 14), (carol,), "override"),
        (utc(2025, 3, 28, 14), utc(2025, 3, 29, 8), (alice,), "layer:daily"),
    ]
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 28, 13)) == [carol]
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 28, 15)) == [alice]


def test_a_higher_layer_wins_where_it_covers(team, alice, bob):
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    layer_of(schedule, [alice], name="nights-and-weekends", rotation_start=utc(2025, 1, 1))
    office_hours(schedule, bob, position=1)
    got = oncall.shifts(schedule, berlin(2025, 6, 2, 0), berlin(2025, 6, 3, 0))
    # alice's daily handoffs to herself (01:00 local) are one shift around bob's office hours.
    assert [(s.start.astimezone(BERLIN).hour, s.users, s.source) for s in got] == [
        (0, (alice,), "layer:nights-and-weekends"),
        (9, (bob,), "layer:office"),
        (17, (alice,), "layer:nights-and-weekends"),
    ]
    assert oncall.on_call_at(schedule, berlin(2025, 6, 2, 12)) == [bob]
    assert oncall.on_call_at(schedule, berlin(2025, 6, 2, 20)) == [alice]


def test_business_hours_leave_a_gap_that_is_shown_as_a_gap(team, alice):
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    office_hours(schedule, alice)
    got = oncall.shifts(schedule, berlin(2025, 6, 2, 0), berlin(2025, 6, 3, 0))
    assert [(s.start, s.end, s.users, s.source) for s in got] == [
        (berlin(2025, 6, 2, 0), berlin(2025, 6, 2, 9), (), "gap"),
        (berlin(2025, 6, 2, 9), berlin(2025, 6, 2, 17), (alice,), "layer:office"),
        (berlin(2025, 6, 2, 17), berlin(2025, 6, 3, 0), (), "gap"),
    ]
    assert got[0].is_gap and not got[1].is_gap
    assert oncall.on_call_at(schedule, berlin(2025, 6, 2, 18)) == []
    assert oncall.on_call_at(schedule, berlin(2025, 6, 2, 16, 59)) == [alice]


def test_a_window_that_wraps_midnight_covers_the_night(team, alice):
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    layer_of(
        schedule,
        [alice],
        rotation_start=utc(2025, 1, 1),
        active_from=time(22),
        active_until=time(6),
    )
    assert oncall.on_call_at(schedule, berlin(2025, 6, 2, 23)) == [alice]
    assert oncall.on_call_at(schedule, berlin(2025, 6, 3, 5, 59)) == [alice]
    assert oncall.on_call_at(schedule, berlin(2025, 6, 3, 6)) == []
    assert oncall.on_call_at(schedule, berlin(2025, 6, 3, 12)) == []


def test_a_layer_covers_until_it_ends_and_not_without_members(team, alice):
    schedule = schedule_of(team)
    layer_of(schedule, [alice], rotation_start=utc(2025, 1, 1), ends_at=utc(2025, 2, 1))
    layer_of(schedule, [], position=1, rotation_start=utc(2025, 1, 1))  # nobody in it yet
    assert oncall.on_call_at(schedule, utc(2025, 1, 31, 23)) == [alice]
    assert oncall.on_call_at(schedule, utc(2025, 2, 1)) == []
    empty = schedule_of(team, name="empty")
    assert oncall.shifts(empty, utc(2025, 1, 1), utc(2025, 1, 2)) == [
        oncall.Shift(utc(2025, 1, 1), utc(2025, 1, 2), (), "gap")
    ]


def test_an_inactive_member_leaves_their_shifts_uncovered(daily_berlin, alice, bob):
    bob.is_active = False
    bob.save()
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 29, 12)) == []
    assert oncall.on_call_at(daily_berlin, berlin(2025, 3, 30, 12)) == [alice]


def test_now_and_next_give_whole_shifts(daily_berlin, alice, bob):
    now, following = oncall.now_and_next(daily_berlin, berlin(2025, 3, 29, 15))
    assert now == oncall.Shift(utc(2025, 3, 29, 8), utc(2025, 3, 30, 7), (bob,), "layer:daily")
    assert following == oncall.Shift(
        utc(2025, 3, 30, 7), utc(2025, 3, 31, 7), (alice,), "layer:daily"
    )


def test_now_and_next_in_a_gap_show_the_gap_and_who_comes(team, alice):
    schedule = schedule_of(team, time_zone="Europe/Berlin")
    office_hours(schedule, alice)
    now, following = oncall.now_and_next(schedule, berlin(2025, 6, 2, 20))
    assert now == oncall.Shift(berlin(2025, 6, 2, 17), berlin(2025, 6, 3, 9), (), "gap")
    assert following == oncall.Shift(
        berlin(2025, 6, 3, 9), berlin(2025, 6, 3, 17), (alice,), "layer:office"
    )


def test_now_and_next_before_a_rotation_starts_find_its_first_shift(team, alice, bob):
    schedule = schedule_of(team)
    layer_of(schedule, [alice, bob], name="weekly", shift_hours=168, rotation_start=utc(2025, 9, 1))
    now, following = oncall.now_and_next(schedule, utc(2025, 6, 1))
    assert now is not None and now.is_gap and now.end == utc(2025, 9, 1)
    assert following == oncall.Shift(utc(2025, 9, 1), utc(2025, 9, 8), (alice,), "layer:weekly")


def test_one_person_alone_on_call_is_one_long_shift(team, alice):
    schedule = schedule_of(team)
    layer_of(schedule, [alice], name="solo", rotation_start=utc(2025, 1, 1))
    got = oncall.shifts(schedule, utc(2025, 3, 1), utc(2025, 3, 8))
    assert got == [oncall.Shift(utc(2025, 3, 1), utc(2025, 3, 8), (alice,), "layer:solo")]
    now, following = oncall.now_and_next(schedule, utc(2025, 3, 1))
    assert now is not None and now.start == utc(2025, 1, 1) and following is None


def test_prefetched_schedules_compute_without_queries(
    team, alice, bob, carol, django_assert_num_queries
):
    for n in range(3):
        schedule = schedule_of(team, name=f"s{n}", time_zone="Europe/Berlin")
        layer_of(schedule, [alice, bob], rotation_start=berlin(2025, 3, 28, 9))
        office_hours(schedule, carol, position=1)
        override_of(schedule, carol, berlin(2025, 4, 1, 0), berlin(2025, 4, 2, 0))
    with django_assert_num_queries(4):  # schedules, layers, members, overrides (with users)
        schedules = list(oncall.with_rotations(Schedule.objects.filter(team=team)))
    with django_assert_num_queries(0):
        for schedule in schedules:
            oncall.now_and_next(schedule, berlin(2025, 4, 1, 12))
            oncall.shifts(schedule, berlin(2025, 3, 25), berlin(2025, 4, 25))
