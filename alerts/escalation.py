"""Who owns an alert and who hears of it next (filled in by the on-call work)."""

from __future__ import annotations

from .models import Alert


def begin(alert: Alert, *, change: str) -> None:
    """Assign a new or reopened alert to the first reachable step of its team's policy."""
    raise NotImplementedError
