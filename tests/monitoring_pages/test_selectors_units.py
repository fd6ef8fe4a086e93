"""Pure parts of the monitoring pages: the windows offered, how windows read, health ordering."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from monitoring.durations import parse_duration
from monitoring.health import Health
from monitoring.selectors import window_of
from monitoring.wording import duration_label


def test_windows_are_the_four_offered():
    assert window_of(None) == ("1h", 3600)
    assert window_of("15m") == ("15m", 900)
    assert window_of("24h") == ("24h", 86400)
    with pytest.raises(ValidationFailed):
        window_of("2d")


def test_health_sorts_failing_first_and_no_data_last():
    ordered = sorted(Health, key=lambda h: h.rank)
    assert ordered == [Health.CRITICAL, Health.WARNING, Health.HEALTHY, Health.NO_DATA]


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(900, "15m"), (3600, "1h"), (28 * 86400, "28d"), (5400, "90m"), (45, "45s")],
)
def test_whole_windows_read_as_prometheus_durations(seconds, label):
    assert duration_label(seconds) == label
    assert parse_duration(label) == seconds


def test_a_window_of_no_whole_minute_reads_in_seconds():
    assert duration_label(12.5) == "12.5s"
