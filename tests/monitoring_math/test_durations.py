"""Prometheus durations: the one parser of burn-rate windows and retention flags, with
Prometheus' own grammar (what Prometheus refuses is a ValueError, never 0 or a guess)."""

from __future__ import annotations

import pytest

from monitoring.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1d", 86400),
        ("15d", 15 * 86400),
        ("2w", 14 * 86400),
        ("1y", 365 * 86400),
        ("250ms", 0.25),
        ("1m500ms", 60.5),
        ("1y2w3d4h5m6s7ms", 365 * 86400 + 14 * 86400 + 3 * 86400 + 4 * 3600 + 5 * 60 + 6.007),
        ("60m", 3600),  # amounts need not be normalised
        ("0s", 0),
        ("0", 0),  # the one unitless duration
    ],
)
def test_it_reads_prometheus_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",  # a number without a unit
        "1.5h",  # fractions
        "30m1h",  # units out of order
        "1m1m",  # a unit twice
        "5M",  # units are lower case
        "15 days",
        " 5m",
        "5m ",
        "-5m",
        "1h 30m",
        "5us",  # Go's units, not Prometheus'
        "m",
        "9999999999999999y",  # more than Prometheus' int64 milliseconds
    ],
)
def test_it_rejects_what_prometheus_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)
