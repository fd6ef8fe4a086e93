"""Fixtures for the alerts tests: the real serving processes and Prometheus of tests/monitoring
(imported, not copied), and the engine's clock put back after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import clock
from tests.monitoring.conftest import (  # noqa: F401 (fixtures)
    demo_packages,
    prometheus_factory,
    prometheus_module_factory,
    serve,
    serve_module,
)


@pytest.fixture(autouse=True)
def engine_clock() -> Iterator[None]:
    """Tests move the engine's clock (`clock.advance`); the next test starts from real time."""
    clock.reset()
    yield
    clock.reset()
