"""Moving a test database through its migrations: back to where an older main left it, then
forward to today's, with the historical models of the state it stops at."""

from __future__ import annotations

from typing import Any

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(targets: list[tuple[str, str | None]]) -> Apps:
    """Migrate to `targets` and return the historical apps of the state reached."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(list(executor.loader.applied_migrations)).apps


def migrate_to_latest() -> Any:
    return migrate_to(MigrationExecutor(connection).loader.graph.leaf_nodes())
