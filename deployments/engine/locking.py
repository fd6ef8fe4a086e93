"""Row locks for the engine and the garbage collector: one actor per release, rollback or
deployment at a time. Never waits for a lock: a held row means another worker is acting."""

from __future__ import annotations

from typing import Any

from django.db import connection


def lock_row(queryset: Any, pk: int) -> Any:
    """select_for_update without waiting: when another worker holds the row, it is acting,
    and we must not (it schedules the next reconcile itself). Raises DatabaseError then, and
    DoesNotExist when the row is gone. Call inside transaction.atomic()."""
    if connection.features.has_select_for_update_nowait:
        return queryset.select_for_update(nowait=True, of=("self",)).get(pk=pk)
    return queryset.select_for_update(of=("self",)).get(pk=pk)
