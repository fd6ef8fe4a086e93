"""The engine's clock stopped at a chosen instant, so that tests assert exact times (a wait of
ten minutes ends at exactly +10 min) and move it only with `clock.advance`. Only the engine's
clock stops: Django's own `timezone.now` (auto_now fields, sessions) keeps running."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace

import pytest

from core import clock


@contextmanager
def stopped_clock(monkeypatch: pytest.MonkeyPatch, at: datetime) -> Iterator[None]:
    clock.reset()
    monkeypatch.setattr(clock, "timezone", SimpleNamespace(now=lambda: at))
    try:
        yield
    finally:
        clock.reset()
