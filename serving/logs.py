"""JSON logs for the inference service (structlog), one line per event.

Callers pass only metadata (ids, names, status codes, timings, reason codes): never a request
payload, a feature value, a prediction or an exception message that could quote one.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

PROCESSORS: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.JSONRenderer(),
]


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Route structlog to `stream` (stdout by default) as JSON lines."""
    structlog.configure(
        processors=PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )


def json_logger(stream: IO[str]) -> Any:
    """A logger writing JSON lines to `stream`, independent of the global configuration."""
    return structlog.wrap_logger(structlog.PrintLogger(stream), processors=PROCESSORS)
