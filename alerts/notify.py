"""Notifications of alert changes (filled in by the notifications work)."""

from __future__ import annotations

from .models import Alert


def announce(alert: Alert, change: str) -> None:
    """Queue one delivery per recipient of this change (after commit)."""
    raise NotImplementedError
