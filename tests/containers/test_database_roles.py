"""docker/postgres/app-role.sql: the application role owns nothing, so after the owner has
migrated it can append to the audit log but not rewrite it: UPDATE and DELETE hit the trigger,
TRUNCATE (which row triggers never see) is refused for lack of the privilege, and it cannot
create tables of its own."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.containers.conftest import (
    ENTRYPOINT,
    ROOT,
    admin_connect,
    container_environment,
    requires_postgres,
    scratch_database_named,
    server_url,
)

pytestmark = requires_postgres

APP_ROLE_SQL = ROOT / "docker" / "postgres" / "app-role.sql"
INSERT_EVENT = """
    INSERT INTO registry_auditevent (occurred_at, actor_type, actor_id, actor_label, action,
        target_type, target_id, target_label, reason, request_id, remote_addr)
    VALUES (now(), 'system', '', 'system:test', 'test.appended', 'test', '1', 'test', '', '', '')
"""


@pytest.fixture(scope="module")
def app_role(tmp_path_factory) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A database set up as in production: the role script first, then migrations run by the
    owner (the test server's superuser). Yields (database, application role)."""
    role = f"test_mp_app_{secrets.token_hex(4)}"
    owner = str(psycopg.conninfo.conninfo_to_dict(server_url("postgres")).get("user"))
    with scratch_database_named() as scratch_database:
        yield from _set_up(scratch_database, role, owner, tmp_path_factory.mktemp("roles"))


def _set_up(scratch_database: str, role: str, owner: str, tmp: Path) -> Iterator[tuple[str, str]]:
    psql = [
        "psql",
        "--no-psqlrc",
        "--quiet",
        server_url(scratch_database),
        "-v",
        f"app_role={role}",
        "-v",
        f"app_password={secrets.token_urlsafe(16)}",
        "-v",
        f"owner_role={owner}",
        "-v",
        f"db_name={scratch_database}",
        "-f",
        str(APP_ROLE_SQL),
    ]
    try:
        created = subprocess.run(psql, capture_output=True, text=True, timeout=30, check=False)
        assert created.returncode == 0, created.stderr
        env = container_environment(tmp / "var", DATABASE_URL=server_url(scratch_database))
        migrated = subprocess.run(
            [str(ENTRYPOINT), "migrate"], env=env, capture_output=True, timeout=120, check=False
        )
        assert migrated.returncode == 0, migrated.stderr
        yield scratch_database, role
    finally:
        with admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch_database}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def connect_as(database: str, role: str) -> psycopg.Connection:
    """Log in as the owner and drop to the role: privilege checks are then the role's, and the
    test server's authentication rules (trust or password) play no part."""
    conn = psycopg.connect(server_url(database), autocommit=True, connect_timeout=5)
    conn.execute(f'SET ROLE "{role}"')
    return conn


def count_events(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM registry_auditevent").fetchone()
    return int(row[0]) if row else 0


def test_the_app_role_appends_to_the_audit_log(app_role):
    database, role = app_role
    with connect_as(database, role) as conn:
        before = count_events(conn)
        conn.execute(INSERT_EVENT)
        assert count_events(conn) == before + 1


@pytest.mark.parametrize(
    "statement",
    ["UPDATE registry_auditevent SET reason = 'rewritten'", "DELETE FROM registry_auditevent"],
)
def test_the_trigger_refuses_rewrites_from_the_app_role(app_role, statement):
    database, role = app_role
    with connect_as(database, role) as conn:
        conn.execute(INSERT_EVENT)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)


def test_the_app_role_may_not_truncate_the_audit_log(app_role):
    database, role = app_role
    with connect_as(database, role) as conn:
        conn.execute(INSERT_EVENT)
        before = count_events(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("TRUNCATE registry_auditevent")
        assert count_events(conn) == before


def test_the_app_role_may_not_create_or_drop_tables(app_role):
    database, role = app_role
    with connect_as(database, role) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE squatter (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
            conn.execute("DROP TABLE registry_auditevent")
