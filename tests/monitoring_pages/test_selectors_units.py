"""Pure parts of the tiles: windows, Prometheus durations, health ordering."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from monitoring.selectors import Health, prometheus_duration_seconds, window_of


def test_windows_are_the_four_offered():
    assert window_of(None) == ("1h", 3600)
    assert window_of("15m") == ("15m", 900)
    assert window_of("24h") == ("24h", 86400)
    with pytest.raises(ValidationFailed):
        window_of("2d")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15d", 15 * 86400), ("1h", 3600), ("1h30m", 5400), ("2w", 14 * 86400), ("0s", 0)],
)
def test_it_reads_prometheus_retention_durations(text, seconds):
    assert prometheus_duration_seconds(text) == seconds


def test_an_unreadable_duration_is_unknown():
    assert prometheus_duration_seconds("15 days") == 0
    assert prometheus_duration_seconds("") == 0


def test_health_sorts_failing_first_and_no_data_last():
    ordered = sorted(Health, key=lambda h: h.rank)
    assert ordered == [Health.CRITICAL, Health.WARNING, Health.HEALTHY, Health.NO_DATA]
