"""docker/entrypoint.sh run as a plain process, as a container would run it: the web role under
gunicorn answering /healthz and /readyz and stopping cleanly on SIGTERM, the worker answering
`controlplane.ping`, the migrate and manage roles, and the refusals of a misconfigured start."""

from __future__ import annotations

import functools
import http.client
import json
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.conf import settings

from tests.containers.conftest import (
    ENTRYPOINT,
    HEALTHCHECK,
    container_environment,
    free_port,
    http_get,
    requires_postgres,
    requires_redis,
    running,
    scratch_database_named,
    server_url,
    wait_for_http,
)

EnvFactory = Callable[..., dict[str, str]]


def run_entrypoint(
    args: list[str], env: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_healthcheck(
    args: list[str], env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def web_env(make_env: EnvFactory, database: str, port: int, **extra: str) -> dict[str, str]:
    return make_env(
        DATABASE_URL=server_url(database),
        REDIS_URL=settings.CELERY_BROKER_URL,
        PORT=str(port),
        WEB_HOST="127.0.0.1",
        # Two cores shared by every test: one process with a few threads is plenty.
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        WEB_ACCESS_LOG="false",
        **extra,
    )


@pytest.fixture(scope="class")
def web(tmp_path_factory) -> Iterator[tuple[subprocess.Popen, int, dict[str, str], str]]:  # type: ignore[no-untyped-def]
    """`entrypoint.sh web` with MIGRATE_ON_START=true on a fresh database, once /healthz is 200."""
    tmp = tmp_path_factory.mktemp("web")
    port = free_port()
    with scratch_database_named() as database:
        env = web_env(
            functools.partial(container_environment, tmp / "var"),
            database,
            port,
            MIGRATE_ON_START="true",
        )
        log = tmp / "web.log"
        with running([str(ENTRYPOINT), "web"], env, log) as proc:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log)
            yield proc, port, env, database


@requires_postgres
@requires_redis
class TestWeb:
    def test_it_answers_healthz_and_readyz_with_database_and_broker(self, web):
        _, port, _, _ = web
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = http_get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok"}

    def test_it_migrates_first_when_migrate_on_start_is_true(self, web):
        *_, database = web
        with psycopg.connect(server_url(database), connect_timeout=5) as conn:
            apps = {row[0] for row in conn.execute("SELECT DISTINCT app FROM django_migrations")}
        assert {"registry", "deployments", "monitoring", "sessions"} <= apps

    def test_it_serves_static_files_through_whitenoise(self, web):
        _, port, _, _ = web
        status, body = http_get(f"http://127.0.0.1:{port}/static/frontend/vendor/htmx.min.js")
        assert status == 200
        assert b"htmx" in body[:2000]

    def test_keep_alive_responses_do_not_wait_for_delayed_acks(self, web):
        # With Nagle on, every response after the first on a connection waits ~40 ms for the
        # client's delayed ACK (uvicorn #3149); gunicorn sets TCP_NODELAY, so none should.
        _, port, _, _ = web
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        durations = []
        try:
            for _ in range(12):
                started = time.perf_counter()
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                durations.append(time.perf_counter() - started)
                assert response.status == 200
                assert response.getheader("Connection", "").lower() != "close"
        finally:
            conn.close()
        assert statistics.median(durations[1:]) < 0.025, durations

    def test_the_container_healthcheck_passes_while_it_runs(self, web):
        _, port, env, _ = web
        assert run_healthcheck(["web", "--port", str(port)], env).returncode == 0


@requires_postgres
@requires_redis
def test_web_exits_cleanly_on_sigterm(scratch_database, container_env, tmp_path):
    port = free_port()
    env = web_env(container_env, scratch_database, port)
    log = tmp_path / "web.log"
    with running([str(ENTRYPOINT), "web"], env, log) as proc:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        # The entrypoint execs gunicorn, so the process we started is the one the signal reaches
        # (as PID 1 in a container): no shell in between to swallow it.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    result = run_healthcheck(["web", "--port", str(port)], env)
    assert result.returncode == 1
    assert "/healthz did not answer" in result.stderr


@requires_postgres
@requires_redis
def test_worker_answers_ping_and_its_healthcheck_then_stops_on_sigterm(
    scratch_database, container_env, tmp_path
):
    from controlplane.celery import ping

    queue = f"containers-{secrets.token_hex(4)}"
    node = f"{queue}@127.0.0.1"
    env = container_env(
        DATABASE_URL=server_url(scratch_database), REDIS_URL=settings.CELERY_BROKER_URL
    )
    log = tmp_path / "worker.log"
    args = [str(ENTRYPOINT), "worker", "-Q", queue, "-n", node, "--concurrency", "1"]
    with running(args, env, log) as proc:
        result = ping.apply_async(queue=queue)
        try:
            assert result.get(timeout=60) == "pong", log.read_text()[-3000:]
        finally:
            result.forget()
        assert run_healthcheck(["worker", "--node", node], env).returncode == 0
        other = run_healthcheck(["worker", "--node", f"absent-{queue}@127.0.0.1"], env)
        assert other.returncode == 1
        assert "did not answer a ping" in other.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]


@requires_redis
def test_beat_healthcheck_reports_the_broker_without_revealing_its_url(container_env):
    assert (
        run_healthcheck(["beat"], container_env(REDIS_URL=settings.CELERY_BROKER_URL)).returncode
        == 0
    )
    secret_url = "redis://:hunter2-secret@127.0.0.1:1/0"
    result = run_healthcheck(["beat"], container_env(REDIS_URL=secret_url))
    assert result.returncode == 1
    assert "broker unreachable" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@requires_postgres
def test_migrate_creates_the_schema_and_the_audit_trigger(scratch_database, container_env):
    result = run_entrypoint(["migrate"], container_env(DATABASE_URL=server_url(scratch_database)))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(server_url(scratch_database), connect_timeout=5) as conn:
        apps = {row[0] for row in conn.execute("SELECT DISTINCT app FROM django_migrations")}
        triggers = {
            row[0]
            for row in conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'registry_auditevent'::regclass"
            )
        }
    assert {"registry", "deployments", "monitoring", "auth", "sessions"} <= apps
    assert "registry_auditevent_append_only" in triggers
    again = run_entrypoint(["migrate"], container_env(DATABASE_URL=server_url(scratch_database)))
    assert again.returncode == 0
    assert "No migrations to apply" in again.stdout


@requires_postgres
def test_manage_runs_a_django_management_command(scratch_database, container_env):
    env = container_env(DATABASE_URL=server_url(scratch_database))
    result = run_entrypoint(["manage", "showmigrations", "registry", "--plan"], env)
    assert result.returncode == 0, result.stderr
    assert "[ ]  registry.0001_initial" in result.stdout


@pytest.mark.parametrize("role", ["web", "worker", "beat"])
def test_long_running_roles_refuse_to_start_without_redis(role, container_env):
    env = container_env(DATABASE_URL="postgres://app:s3cret-password@db.invalid/modelplane")
    result = run_entrypoint([role], env, timeout=10)
    assert result.returncode == 78
    assert "REDIS_URL" in result.stderr
    assert "s3cret-password" not in result.stderr + result.stdout


def test_migrate_refuses_to_fall_back_to_sqlite(container_env):
    result = run_entrypoint(["migrate"], container_env(), timeout=10)
    assert result.returncode == 78
    assert "DATABASE_URL" in result.stderr


@pytest.mark.parametrize("args", [["wokrer"], ["manage"]])
def test_it_prints_usage_for_an_unknown_role_or_a_bare_manage(args, container_env):
    result = run_entrypoint(args, container_env(), timeout=10)
    assert result.returncode == 64
    assert result.stderr.startswith("usage: entrypoint.sh web")
