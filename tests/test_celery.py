"""The Celery app runs tasks on a real worker over the real broker."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from queue import Empty
from typing import Any

import pytest
from django.conf import settings

from controlplane import broker
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


def _consume(opts: dict, count: int, out: Any) -> None:
    from kombu import Connection

    received, errors = 0, []
    with Connection(f"{broker.ALIAS}://", transport_options=opts) as conn:
        queue = conn.SimpleQueue("race")
        while received < count:
            try:
                message = queue.get(timeout=10)
            except Empty:
                break
            except Exception as exc:  # a torn message is counted, not raised
                errors.append(repr(exc))
                continue
            received += 1
            message.ack()
    out.put((received, errors))


def test_the_demo_broker_never_hands_out_a_message_still_being_written(tmp_path):
    """kombu's own filesystem transport lets a consumer polling the folder take a message file
    before it is written (every message was torn in this test with `filesystem://`); the demo's
    broker writes aside and renames into place."""
    from kombu import Connection

    for folder in ("queue", "processed", "control"):
        (tmp_path / folder).mkdir()
    opts = {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "processed_folder": str(tmp_path / "processed"),
        "control_folder": str(tmp_path / "control"),
        "store_processed": False,
        "polling_interval": 0.0005,
    }
    count = 100
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    consumer = context.Process(target=_consume, args=(opts, count, out))
    consumer.start()
    try:
        with Connection(f"{broker.ALIAS}://", transport_options=opts) as conn:
            queue = conn.SimpleQueue("race")
            for i in range(count):
                queue.put({"i": i, "pad": "x" * 500_000})
        received, errors = out.get(timeout=120)
    finally:
        consumer.join(30)
    assert errors == []
    assert received == count
    assert not list((tmp_path / "queue").iterdir()), "no partial file left behind"


def test_the_embedded_settings_use_the_atomic_broker():
    assert settings.CELERY_BROKER_URL.startswith(("redis://", f"{broker.ALIAS}://"))
