"""A real Celery worker process on the real Redis, pointed at the running test's database and
its own queue. Used with `transactional_db` so the worker sees committed rows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        MODELPLANE_TEST_DB_NAME=str(connection.settings_dict["NAME"]),
        MODELPLANE_CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra or {})
    return env


@contextmanager
def celery_worker(
    log_path: Path,
    *,
    name: str = "w1",
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Iterator[subprocess.Popen]:
    """Start `celery worker` as a child process and wait until it has run a ping task."""
    from controlplane.celery import ping

    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "controlplane",
        "worker",
        "-Q",
        settings.CELERY_TASK_DEFAULT_QUEUE,
        "-n",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    log = log_path.open("ab")
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=worker_env(extra_env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + ready_timeout
        result = ping.delay()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {proc.returncode}; see {log_path}")
            if result.ready():
                assert result.get(timeout=1) == "pong"
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"celery worker not ready in {ready_timeout}s; see {log_path}")
            time.sleep(0.1)
        yield proc
    finally:
        stop_process_group(proc)
        log.close()


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
