"""The engine's clock. Tests move it (`clock.set_offset`) instead of sleeping; production
reads the wall clock. Worker processes started by tests read the offset from a file named by
MODELPLANE_CLOCK_FILE, so one controllable clock spans processes."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from django.utils import timezone

_offset = timedelta(0)


def now() -> datetime:
    return timezone.now() + _offset + _file_offset()


def _file_offset() -> timedelta:
    path = os.environ.get("MODELPLANE_CLOCK_FILE")
    if not path:
        return timedelta(0)
    try:
        return timedelta(seconds=float(Path(path).read_text() or 0))
    except (OSError, ValueError):
        return timedelta(0)


def advance(seconds: float) -> None:
    global _offset
    path = os.environ.get("MODELPLANE_CLOCK_FILE")
    if path:
        Path(path).write_text(str(_file_offset().total_seconds() + seconds))
    else:
        _offset += timedelta(seconds=seconds)


def reset() -> None:
    global _offset
    _offset = timedelta(0)
    path = os.environ.get("MODELPLANE_CLOCK_FILE")
    if path:
        Path(path).write_text("0")
