"""Fixtures that run the container entrypoints as plain processes on this host: an environment
like a container's (production settings, services from DATABASE_URL and REDIS_URL), scratch
databases on the test PostgreSQL, free loopback ports, and processes that are always stopped."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tests.support.celery import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"

requires_postgres = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="no PostgreSQL here (CI fails instead)",
)
requires_redis = pytest.mark.skipif(
    not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)"
)


def server_url(database: str | None = None, user: str | None = None) -> str:
    """The test PostgreSQL's URL, on another database and/or as another role."""
    db = settings.DATABASES["default"]
    who = user or db["USER"] or "postgres"
    password = "" if user else (db.get("PASSWORD") or "")
    auth = f"{who}:{password}" if password else who
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}"


def admin_connect(database: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(server_url(database), autocommit=True, connect_timeout=5)


@contextmanager
def scratch_database_named() -> Iterator[str]:
    """An empty database of its own (nothing migrated), dropped afterwards; yields its name."""
    name = f"test_modelplane_{os.environ['MODELPLANE_TEST_RUN']}_c{secrets.token_hex(4)}"
    with admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_database() -> Iterator[str]:
    with scratch_database_named() as name:
        yield name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_environment(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a container of the image: production settings (no DEBUG, a real
    SECRET_KEY), services only from the overrides, and this checkout on the path."""
    env = {
        key: value
        for key, value in os.environ.items()
        # The test run's own settings and services must not leak into the "container".
        if not key.startswith(("DJANGO_", "MODELPLANE_", "PYTEST_", "CELERY_"))
        and key not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        SECRET_KEY=secrets.token_urlsafe(32),
        MODELPLANE_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
    )
    env.update(overrides)
    return env


@pytest.fixture
def container_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """container_env(DATABASE_URL=..., REDIS_URL=...) -> container_environment in tmp_path."""

    def make(**overrides: str) -> dict[str, str]:
        return container_environment(tmp_path / "var", **overrides)

    return make


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Start a process in its own session; on exit, stop its whole process group."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            stop_process_group(proc)


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for_http(
    url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60.0
) -> tuple[int, bytes]:
    """Poll `url` until it answers 200 (returned), the process dies, or the time is up."""
    deadline = time.monotonic() + timeout
    last: tuple[int, bytes] | str = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode}: {log_path.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError):
            last = http_get(url)
            if last[0] == 200:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{url} not 200 within {timeout}s (last: {last!r}); see {log_path}")
