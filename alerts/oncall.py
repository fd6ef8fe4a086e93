"""Who is on call: a schedule's rotation layers and overrides turned into shifts, with gaps shown
as gaps. Pure computation over a schedule's rows (prefetch them with `with_rotations`, and a page
of many schedules costs no query per schedule); it never writes and never validates (the
services refuse bad input before it is stored, and whatever is stored still computes).

Rules, in order: an override wins over every layer (the most recent override where two
overlap); among layers, a higher `position` wins where it covers (the later layer on a tie);
where nothing covers there is a gap. A layer covers from its `rotation_start` until its
`ends_at`, within its optional daily window, while it has members (an inactive member's shifts
are left uncovered rather than paging an account that cannot answer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Prefetch, QuerySet

from .models import LayerMember, Schedule, ScheduleLayer, ScheduleOverride

GAP = "gap"
OVERRIDE = "override"
# How far apart to look for the end of a long gap (or its start) before giving up: "next"
# further away than this is shown as none.
GAP_SEARCH_LIMIT = timedelta(days=400)
_TINY = timedelta(microseconds=1)


@dataclass(frozen=True)
class Shift:
    """Someone (or nobody: a gap) is on call from `start` to `end` (UTC, end excluded)."""

    start: datetime
    end: datetime
    users: tuple[Any, ...]
    source: str  # "layer:<layer name>", "override" or "gap"

    @property
    def is_gap(self) -> bool:
        return not self.users


def with_rotations(
    queryset: QuerySet[Schedule], *, since: datetime | None = None
) -> QuerySet[Schedule]:
    """Schedules with their layers, members (and users) and overrides loaded in a fixed number
    of queries. `since` leaves out overrides that ended before it (they never matter again)."""
    overrides = ScheduleOverride.objects.select_related("user").order_by("starts_at", "id")
    if since is not None:
        overrides = overrides.filter(ends_at__gt=since)
    members = LayerMember.objects.select_related("user").order_by("position", "id")
    return queryset.prefetch_related(
        Prefetch(
            "layers",
            queryset=ScheduleLayer.objects.order_by("position", "id").prefetch_related(
                Prefetch("members", queryset=members)
            ),
        ),
        Prefetch("overrides", queryset=overrides),
    )


def on_call_at(schedule: Schedule, at: datetime) -> list[Any]:
    """The people on call at the instant `at`; an empty list is a gap."""
    pieces = shifts(schedule, at, at + _TINY)
    return list(pieces[0].users) if pieces else []


def shifts(schedule: Schedule, start: datetime, end: datetime) -> list[Shift]:
    """The shifts from `start` to `end`, contiguous and clipped to that window, gaps included.
    The same people from the same source in a row are one shift (a one-person rotation is one
    long shift); a rotation shift cut by an override shows as its two halves around it."""
    if end <= start:
        return []
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    tz = _zone(schedule.time_zone)
    layers = sorted(schedule.layers.all(), key=lambda layer: (layer.position, layer.id))
    # Highest first: the first layer that covers an instant is the one on call.
    covers = [list(_layer_pieces(layer, tz, start, end)) for layer in reversed(layers)]
    overrides = sorted(
        (
            o
            for o in schedule.overrides.all()
            if o.starts_at < end and o.ends_at > start and o.user.is_active
        ),
        key=lambda o: (o.created_at or o.starts_at, o.id),
        reverse=True,  # the most recent override wins where two overlap
    )
    instants = {start, end}
    for pieces in covers:
        for piece in pieces:
            instants.update((piece.start, piece.end))
    for override in overrides:
        instants.update((max(override.starts_at, start), min(override.ends_at, end)))
    points = sorted(instants)

    out: list[Shift] = []
    cursors = [0] * len(covers)
    for left, right in pairwise(points):
        users, source = _winner(left, overrides, covers, cursors, layers)
        if out and out[-1].source == source and out[-1].users == users:
            out[-1] = Shift(out[-1].start, right, users, source)
        else:
            out.append(Shift(left, right, users, source))
    return out


def now_and_next(schedule: Schedule, at: datetime) -> tuple[Shift | None, Shift | None]:
    """The shift at `at` and the one after it (which may be a gap), each with its real start
    and end. A shift (or gap) that lasts past GAP_SEARCH_LIMIT has no next shift."""
    at = at.astimezone(UTC)
    current = _shift_at(schedule, at)
    if current.end - at >= GAP_SEARCH_LIMIT:
        return current, None
    return current, _shift_at(schedule, current.end)


def _shift_at(schedule: Schedule, at: datetime) -> Shift:
    """The whole shift that holds `at`. Only a gap, or one person alone on call, can outlast
    `_reach`: for those the window widens until the shift ends on both sides (or
    GAP_SEARCH_LIMIT is reached)."""
    before = after = _reach(schedule)
    while True:
        pieces = shifts(schedule, at - before, at + after)
        current = next(piece for piece in pieces if piece.start <= at < piece.end)
        open_start = current.start <= at - before and before < GAP_SEARCH_LIMIT
        open_end = current.end >= at + after and after < GAP_SEARCH_LIMIT
        if not (open_start or open_end):
            return current
        before = before * 2 if open_start else before
        after = after * 2 if open_end else after


# Layers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    start: datetime
    end: datetime
    user: Any


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _reach(schedule: Schedule) -> timedelta:
    """Longer than any shift that is not a gap: the longest rotation shift (a day more for a
    daylight-saving change), override, or day."""
    longest = timedelta(days=1)
    for layer in schedule.layers.all():
        longest = max(longest, timedelta(hours=layer.shift_hours + 24))
    for override in schedule.overrides.all():
        longest = max(longest, override.ends_at - override.starts_at)
    return longest + timedelta(days=1)


def _winner(
    at: datetime,
    overrides: list[ScheduleOverride],
    covers: list[list[_Piece]],
    cursors: list[int],
    layers: list[ScheduleLayer],
) -> tuple[tuple[Any, ...], str]:
    for override in overrides:
        if override.starts_at <= at < override.ends_at:
            return (override.user,), OVERRIDE
    found: tuple[tuple[Any, ...], str] | None = None
    for i, pieces in enumerate(covers):
        # Instants only grow, so each layer's cursor only moves forward.
        while cursors[i] < len(pieces) and pieces[cursors[i]].end <= at:
            cursors[i] += 1
        if found is not None or cursors[i] >= len(pieces):
            continue
        piece = pieces[cursors[i]]
        if piece.start <= at:
            layer = layers[len(layers) - 1 - i]
            found = (piece.user,), f"layer:{layer.name}"
    return found or ((), GAP)


def _layer_pieces(
    layer: ScheduleLayer, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[_Piece]:
    """Where this layer covers within [start, end), shift by shift, cut to its daily window."""
    members = sorted(layer.members.all(), key=lambda m: (m.position, m.id))
    if not members or layer.shift_hours <= 0:
        return
    rotation = _Rotation(layer, tz)
    begin = max(start, layer.rotation_start)
    finish = min(end, layer.ends_at) if layer.ends_at else end
    if begin >= finish:
        return
    k = rotation.index(begin)
    while True:
        shift_start, shift_end = rotation.boundary(k), rotation.boundary(k + 1)
        if shift_start >= finish:
            return
        member = members[k % len(members)]
        low, high = max(shift_start, begin), min(shift_end, finish)
        if member.user.is_active and low < high:
            for w_start, w_end in _windows(layer, tz, low, high):
                yield _Piece(w_start, w_end, member.user)
        k += 1


class _Rotation:
    """Handoff instants of one layer: shift k starts at boundary(k). Whole-day shifts count
    local calendar days (the handoff keeps its wall time across a daylight-saving change, so
    that day's shift is 23 or 25 hours); other lengths count elapsed hours."""

    def __init__(self, layer: ScheduleLayer, tz: ZoneInfo) -> None:
        self.origin = layer.rotation_start.astimezone(UTC)
        self.tz = tz
        self.hours = layer.shift_hours
        self.days = layer.shift_hours // 24 if layer.shift_hours % 24 == 0 else 0
        local = self.origin.astimezone(tz)
        self.local_date = local.date()
        self.wall = local.time().replace(fold=local.fold)

    def boundary(self, k: int) -> datetime:
        if self.days:
            day = self.local_date + timedelta(days=k * self.days)
            return datetime.combine(day, self.wall, tzinfo=self.tz).astimezone(UTC)
        return self.origin + timedelta(hours=k * self.hours)

    def index(self, at: datetime) -> int:
        """The shift that holds `at`: boundary(k) <= at < boundary(k + 1)."""
        if self.days:
            k = (at.astimezone(self.tz).date() - self.local_date).days // self.days
        else:
            k = int((at - self.origin) // timedelta(hours=self.hours))
        while self.boundary(k) > at:
            k -= 1
        while self.boundary(k + 1) <= at:
            k += 1
        return k


def _windows(
    layer: ScheduleLayer, tz: ZoneInfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut to the layer's daily local window (all of it when there is none). A
    window whose end is not after its start wraps midnight (22:00..06:00)."""
    frm, until = layer.active_from, layer.active_until
    if (frm is None and until is None) or frm == until:
        yield start, end
        return
    frm = frm or time(0)
    day: date = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        w_start = datetime.combine(day, frm, tzinfo=tz).astimezone(UTC)
        if until is None or until <= frm:
            close_day, close = day + timedelta(days=1), until or time(0)
        else:
            close_day, close = day, until
        w_end = datetime.combine(close_day, close, tzinfo=tz).astimezone(UTC)
        low, high = max(start, w_start), min(end, w_end)
        if low < high:
            yield low, high
        day += timedelta(days=1)
