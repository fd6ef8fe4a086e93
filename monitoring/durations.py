"""The one parser of Prometheus durations (`90s`, `5m`, `1h30m`, `1d`, `1w`, `1y`, `250ms`), for
burn-rate windows, the SLO window and Prometheus' retention flag. Pure; it must never guess at a
malformed duration (a ValueError, never 0 or a partial reading)."""

from __future__ import annotations

import re

# Prometheus' own grammar (prometheus/common model.ParseDuration): integer amounts, units from
# the largest to the smallest, each at most once, no spaces and no fractions; "0" alone is zero.
_DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_UNIT_MS = {
    "y": 365 * 86_400_000,  # a year is 365 days, a week 7, a day 24 hours, as Prometheus says
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}
# Prometheus keeps durations as int64 milliseconds and refuses what does not fit.
_MAX_MS = 2**63 - 1


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration; ValueError for anything Prometheus would refuse."""
    if text == "0":
        return 0.0
    match = _DURATION.match(text) if text else None
    if match is None:
        raise ValueError(f"not a Prometheus duration: {text!r} (use forms like 90s, 5m, 1h30m, 1d)")
    total_ms = sum(
        int(amount) * _UNIT_MS[unit] for unit, amount in match.groupdict().items() if amount
    )
    if total_ms > _MAX_MS:
        raise ValueError(f"duration out of range: {text!r}")
    return total_ms / 1000
