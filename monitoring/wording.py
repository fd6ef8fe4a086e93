"""How a number reads on a monitoring page: percentages, latencies, money, windows and "no data".
Pure text; it must never decide a status or read a metric."""

from __future__ import annotations

from monitoring.slo import SLO_WINDOW, SLO_WINDOW_SECONDS

NO_DATA = "no data"


def percent(value: float) -> str:
    if value == 0:
        return "0%"
    return f"{value:.2%}" if value < 0.1 else f"{value:.1%}"


def ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    return f"{milliseconds:.3g} ms" if milliseconds < 1000 else f"{seconds:.3g} s"


def money(amount: float) -> str:
    if amount != 0 and abs(amount) < 0.01:
        return f"{amount:.4f}"
    return f"{amount:,.2f}"


def duration_label(seconds: float) -> str:
    """A window as a page says it: whole days, hours or minutes when it is one ("15m", "1h",
    "28d"), otherwise seconds ("12.5s")."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def slo_window_label(seconds: float, horizon_label: str) -> str:
    """The error budget's window, saying so when the source keeps less than the SLO window."""
    label = duration_label(seconds)
    if seconds < SLO_WINDOW_SECONDS:
        return f"{label} (longest available: {horizon_label}; the SLO window is {SLO_WINDOW})"
    return label
