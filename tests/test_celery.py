"""The Celery app runs tasks on a real worker over the real broker."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.celery import celery_worker


@pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)")
def test_a_real_worker_answers_ping_over_redis(transactional_db, tmp_path):
    from controlplane.celery import ping

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with celery_worker(tmp_path / "worker.log"):
        assert ping.delay().get(timeout=20) == "pong"
