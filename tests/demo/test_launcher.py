"""`python -m demo` (make demo): it refuses what would go wrong before Django starts (a busy
port, someone else's database), and `--no-serve` sets everything up on its own SQLite file and
prints the logins, idempotently."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def run_demo(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MODELPLANE_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "demo", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_it_refuses_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_demo("--port", str(port), env={"MODELPLANE_VAR_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing was set up"


def test_it_refuses_a_database_other_than_its_own(tmp_path):
    result = run_demo(
        "--no-serve",
        env={"MODELPLANE_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgres://x@127.0.0.1/prod"},
    )
    assert result.returncode == 2
    assert "runs on its own SQLite database" in result.stderr
    assert not any(tmp_path.iterdir())


def test_no_serve_sets_up_the_demo_and_prints_the_logins_idempotently(tmp_path):
    env = {"MODELPLANE_VAR_DIR": str(tmp_path), "DEMO_PASSWORD": "pw-for-tests-only"}
    first = run_demo("--no-serve", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    for who in ("owner", "approver", "oncall"):
        assert f"Login:    {who} / pw-for-tests-only" in first.stdout

    again = run_demo("--no-serve", env=env)
    assert again.returncode == 0, again.stderr[-2000:]

    with sqlite3.connect(tmp_path / "modelplane.sqlite3") as db:
        versions = db.execute("SELECT count(*) FROM registry_modelversion").fetchone()[0]
        environments = db.execute("SELECT name FROM deployments_environment").fetchall()
        on_call = db.execute(
            "SELECT s.name, u.username FROM alerts_schedule s "
            "JOIN alerts_schedulelayer l ON l.schedule_id = s.id "
            "JOIN alerts_layermember m ON m.layer_id = l.id "
            "JOIN auth_user u ON u.id = m.user_id"
        ).fetchall()
        policies = db.execute("SELECT name, is_default FROM alerts_escalationpolicy").fetchall()
        steps = db.execute("SELECT target FROM alerts_escalationstep ORDER BY position").fetchall()
        notes = db.execute(
            "SELECT d.rollback_notes FROM deployments_deployment d JOIN deployments_environment e "
            "ON e.id = d.environment_id WHERE e.name = 'production'"
        ).fetchall()
    assert versions == 2, "two versions, registered once"
    assert sorted(name for (name,) in environments) == ["production", "staging"]
    # The story's alert step: the failing canary's alert goes to `oncall`, then the owner.
    assert on_call == [("Demo on-call", "oncall")], "one schedule, seeded once"
    assert policies == [("Demo escalation", 1)]
    assert [target for (target,) in steps] == ["schedule", "team_owners"]
    assert len(notes) == 1 and notes[0][0], "the deployment has its rollback notes"
