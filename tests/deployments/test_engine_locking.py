"""Two workers on one release: the second one sees the row locked and does nothing."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections

from deployments import engine
from deployments.engine import loop
from deployments.models import Release


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_workers_never_act_on_one_release_at_once(transactional_db, promoted_v1):
    world = promoted_v1
    release = world.release(2)
    acting = threading.Event()
    release_lock = threading.Event()
    results: dict[str, object] = {}
    inside = []

    real_advance = loop._advance

    def slow_advance(r):  # type: ignore[no-untyped-def]
        inside.append(threading.current_thread().name)
        acting.set()
        release_lock.wait(10)
        return real_advance(r)

    loop._advance = slow_advance
    try:

        def first() -> None:
            try:
                results["first"] = engine.reconcile(release.pk, force=True)
            finally:
                connections.close_all()

        t = threading.Thread(target=first, name="worker-1")
        t.start()
        assert acting.wait(10)
        started = time.monotonic()
        results["second"] = engine.reconcile(release.pk, force=True)
        waited = time.monotonic() - started
        release_lock.set()
        t.join(20)
    finally:
        loop._advance = real_advance
    assert inside == ["worker-1"], "only one worker entered the release"
    assert results["second"] is None
    assert waited < 2, "the second worker does not queue behind the lock"
    assert Release.objects.get(pk=release.pk).reconcile_count == 1
