"""The Celery app runs tasks on a real worker over the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.support.celery import celery_worker


@pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)")
def test_a_real_worker_answers_ping_over_redis(transactional_db, tmp_path):
    from controlplane.celery import ping

    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with celery_worker(tmp_path / "worker.log"):
        assert ping.delay().get(timeout=20) == "pong"


def test_a_worker_loads_the_kubernetes_api_classes_before_it_forks_its_pool():
    # A fresh interpreter: the test process may have loaded them already.
    code = (
        "import sys\n"
        "from celery import signals\n"
        "import controlplane.celery\n"
        "assert 'kubernetes.client.api.apps_v1_api' not in sys.modules\n"
        "signals.worker_init.send(sender=None)\n"
        "missing = [m for m in ('apps_v1_api', 'core_v1_api', 'autoscaling_v2_api',\n"
        "    'custom_objects_api') if f'kubernetes.client.api.{m}' not in sys.modules]\n"
        "assert not missing, missing\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
    )
    assert result.returncode == 0, result.stderr
