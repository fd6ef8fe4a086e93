"""Pages at scale (issue 12, target 3): server time and query count of the portal's pages on a
database the size of a busy installation.

    flock /work/brief/bench.lock .venv/bin/python bench/pages.py
    .venv/bin/python bench/pages.py --scale 0.1 --repeat 5      # quick look, ~1 minute
    .venv/bin/python bench/pages.py --explain alerts-resolved   # EXPLAIN ANALYZE its slow SQL
    .venv/bin/python bench/pages.py --profile audit-log         # pyinstrument of the view
    .venv/bin/python bench/pages.py --db bench_pages_dev ...    # seed once, keep, reuse after

It creates its own PostgreSQL database (bench_pages_<pid>) on 127.0.0.1:5432 as user postgres
(trust authentication; `--dsn` to change), migrates it, seeds it with COPY (psycopg 3) and
ANALYZEs it, then drops it when done, also on Ctrl-C or an error (`--keep` keeps it; `--db NAME`
seeds NAME once and keeps it, and later runs migrate it, so new indexes apply, and reuse it; drop
it with `dropdb -h 127.0.0.1 -U postgres NAME`). Seeded at
scale 1: 20 teams, 500 models, 10,000 versions (model-000 alone has 1,000), 1,000 aliases,
4 environments x 500 models = 2,000 deployments with their configs, 2,000 promoted releases
and 200 active ones (with steps; one with approvals), 500 rollbacks, 50,000 alerts (2,500
open), 20,000 review items (4,000 open) and 500,000 audit events.

Each page is asked through Django's test Client, in process (no HTTP server: the time is the
server's own, from the request to the rendered response, middleware included) as `bench-user`
(a maintainer, approver, reviewer and on-call member of 15 of the 20 teams) and as a superuser
(`bench-admin`, who sees everything). Per page: median and p95 server time over --repeat
requests after 2 warm-up requests, the time spent in SQL (median), and the number of queries
(which the ratchet in tests/query_counts.json keeps flat as data grows). Nothing is left
running; the only traffic is to PostgreSQL on 127.0.0.1.

`--profile PAGE` needs pyinstrument, a tool not a project dependency:
`.venv/bin/pip install pyinstrument`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0
NOW = datetime.now(UTC).replace(microsecond=0)
RNG = random.Random(12)


# The database -----------------------------------------------------------------------------------


def admin_connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, dbname="postgres", autocommit=True)


def create_database(dsn: str, name: str) -> None:
    with admin_connect(dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(dsn: str, name: str) -> None:
    with admin_connect(dsn) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(dsn: str, name: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    os.environ["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{name}"
    os.environ.setdefault("SECRET_KEY", "bench-only-not-a-secret")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["SESSION_COOKIE_SECURE"] = "0"
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# Seeding ----------------------------------------------------------------------------------------


class Table:
    """Rows of one model written with COPY: ids are ours (1..n), so rows can point at each
    other before they exist; the sequences are set past them at the end."""

    def __init__(self, model: Any) -> None:
        from django.db.models import JSONField

        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.columns = [f.column for f in self.fields]
        self.json = [isinstance(f, JSONField) for f in self.fields]
        self.defaults = [self._default(f) for f in self.fields]
        self.next_id = 1

    @staticmethod
    def _default(field: Any) -> Any:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            return NOW
        if field.has_default():
            return field.get_default()
        return "" if field.empty_strings_allowed and not field.null else None

    def write(self, conn: Any, rows: Iterable[dict[str, Any]]) -> int:
        names = [f.attname for f in self.fields]
        table = self.model._meta.db_table
        count = 0
        with conn.cursor() as cursor:
            columns = ", ".join(f'"{c}"' for c in self.columns)
            sql = f'COPY "{table}" ({columns}) FROM STDIN'
            with cursor.copy(sql) as copy:
                for row in rows:
                    if "id" not in row:
                        row["id"] = self.next_id
                    self.next_id = max(self.next_id, row["id"] + 1)
                    values = []
                    for name, is_json, default in zip(names, self.json, self.defaults, strict=True):
                        value = row.get(name, default)
                        if callable(value):
                            value = value()
                        if is_json and value is not None:
                            value = Jsonb(value)
                        values.append(value)
                    copy.write_row(values)
                    count += 1
        return count


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


def seed(scale: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Everything the pages read, written with COPY in one transaction."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from alerts.models import Alert, AlertEvent
    from deployments import engine
    from deployments.models import (
        ACTIVE_STATES,
        Approval,
        Deployment,
        DeploymentConfig,
        Environment,
        Release,
        ReleaseState,
        ReleaseStep,
        Rollback,
    )
    from identity.models import AuditEvent, Membership, Team
    from registry.models import Alias, ModelVersion, RegisteredModel
    from reviews.models import ReviewItem

    def n(count: int) -> int:
        return max(1, int(count * scale))

    conn = connection.connection  # the psycopg 3 connection under Django's
    counts: dict[str, int] = {}
    password = make_password("bench-only")

    # Teams and people
    teams = Table(Team)
    counts["teams"] = teams.write(
        conn,
        ({"slug": f"team-{t:02d}", "name": f"Team {t:02d}", "created_at": NOW} for t in range(20)),
    )
    User = get_user_model()
    users = Table(User)
    people = [
        {"username": "bench-user", "is_superuser": False},
        {"username": "bench-admin", "is_superuser": True, "is_staff": True},
    ] + [{"username": f"person-{i:03d}", "is_superuser": False} for i in range(60)]
    for person in people:
        person.update(password=password, email=f"{person['username']}@example.com")
        person.setdefault("is_staff", False)
        person.update(is_active=True, date_joined=NOW, first_name="", last_name="")
    users.write(conn, people)
    user_id, others = 1, list(range(3, len(people) + 1))
    member_of: dict[int, list[int]] = {t: [] for t in range(1, 21)}
    memberships = []
    for team in range(1, 16):  # bench-user: 15 of the 20 teams, every duty
        memberships.append(
            {
                "team_id": team,
                "user_id": user_id,
                "role": "maintainer",
                "is_approver": True,
                "is_on_call": True,
                "is_reviewer": True,
                "created_at": NOW,
            }
        )
        member_of[team].append(user_id)
    for i, person in enumerate(others):
        for team in {1 + i % 20, 1 + (i * 7 + 3) % 20}:
            memberships.append(
                {
                    "team_id": team,
                    "user_id": person,
                    "role": ("owner", "maintainer", "viewer")[i % 3],
                    "is_approver": i % 2 == 0,
                    "is_on_call": i % 5 == 0,
                    "is_reviewer": i % 3 != 2,
                    "created_at": NOW,
                }
            )
            member_of[team].append(person)
    Table(Membership).write(conn, memberships)

    # Models, versions, aliases: model-000 has a tenth of the versions, the rest share them.
    model_count, version_total = n(500), n(10_000)
    heavy = max(1, version_total // 10)
    rest, extra = divmod(version_total - heavy, max(1, model_count - 1))
    per_model = [heavy] + [rest + (m < extra) for m in range(model_count - 1)]
    model_team = [1 + m % 20 for m in range(model_count)]
    Table(RegisteredModel).write(
        conn,
        (
            {
                "name": f"model-{m:03d}",
                "team_id": model_team[m],
                "risk_tier": ("low", "medium", "high")[m % 3],
                "description": f"Model {m} of team {model_team[m]}.",
                "tags": ["bench", f"t{m % 7}"],
                "last_version_number": per_model[m],
                "created_at": ago(days=400),
                "updated_at": ago(days=m % 90),
            }
            for m in range(model_count)
        ),
    )

    def staff_of(team: int, i: int) -> int:
        staff = member_of[team] or [user_id]
        return staff[i % len(staff)]

    versions = Table(ModelVersion)
    version_id: dict[tuple[int, int], int] = {}  # (model index, number) -> id
    rows = []
    for m in range(model_count):
        for number in range(1, per_model[m] + 1):
            vid = versions.next_id + len(rows)
            version_id[(m, number)] = vid
            rows.append(
                {
                    "id": vid,
                    "model_id": m + 1,
                    "number": number,
                    "artifact_uri": f"s3://artifacts/model-{m:03d}/{number}.mpkg",
                    "artifact_digest": digest(f"{m}-{number}"),
                    "digest_verified": True,
                    "framework": "sklearn",
                    "input_schema": {"type": "object", "properties": {"x": {"type": "number"}}},
                    "status": ("approved", "validated", "registered", "deprecated")[number % 4],
                    "tags": ["nightly"] if number % 5 else ["release"],
                    "created_by_id": staff_of(model_team[m], number),
                    "source_commit": f"{number:040x}",
                    "created_at": ago(minutes=(per_model[m] - number) * 37),
                }
            )
    counts["versions"] = versions.write(conn, rows)
    latest = {m: per_model[m] for m in range(model_count)}
    aliases = []
    for m in range(model_count):
        for name, back in (("champion", 1), ("challenger", 0)):
            number = max(1, latest[m] - back)
            aliases.append(
                {
                    "model_id": m + 1,
                    "name": name,
                    "version_id": version_id[(m, number)],
                    "updated_at": NOW,
                }
            )
    Table(Alias).write(conn, aliases)

    # Environments, deployments (every model in every environment), their configs.
    envs = [
        ("staging", False, None),
        ("production", True, 1),
        ("eu-production", True, 1),
        ("us-production", True, 1),
    ]
    Table(Environment).write(
        conn,
        (
            {
                "id": i + 1,
                "name": name,
                "runtime_kind": "kubernetes",
                "runtime_config": {"api_url": "http://127.0.0.1:9", "namespace": name},
                "metrics_kind": "none",
                "is_production": prod,
                "staging_id": staging,
                "vcpu_hour_price": 0.04,
                "gib_hour_price": 0.005,
                "created_at": NOW,
            }
            for i, (name, prod, staging) in enumerate(envs)
        ),
    )
    deployment_count = min(n(2_000), model_count * len(envs))
    deployments = []  # (deployment id, model index, environment id)
    for d in range(deployment_count):
        env, m = 1 + d // model_count, d % model_count
        deployments.append((d + 1, m, env))
    review_policy = {"all": True, "sla_minutes": 240, "claim_minutes": 30}
    reviewed = [d for d, m, env in deployments if env == 2 and m % 5 == 0]  # 100 deployments
    Table(DeploymentConfig).write(
        conn,
        (
            {
                "id": d,
                "deployment_id": d,
                "revision": 1,
                "review_policy": review_policy if d in set(reviewed) else {},
                "created_by_label": "bench",
                "created_at": ago(days=100),
            }
            for d, _, _ in deployments
        ),
    )

    def stable_of(m: int) -> int:
        return version_id[(m, max(1, latest[m] - 1))]

    def previous_of(m: int) -> int:
        return version_id[(m, max(1, latest[m] - 2))]

    Table(Deployment).write(
        conn,
        (
            {
                "id": d,
                "name": f"model-{m:03d}",
                "model_id": m + 1,
                "environment_id": env,
                "strategy": "canary",
                "strategy_params": {"steps": [10, 50, 100], "analysis_interval_seconds": 600},
                "config_id": d,
                "stable_version_id": stable_of(m),
                "previous_stable_version_id": previous_of(m),
                "promoted_at": ago(days=3),
                "rollback_notes": "Roll back, then page the owning team.",
                "created_at": ago(days=100),
                "updated_at": ago(days=3),
            }
            for d, m, env in deployments
        ),
    )
    counts["deployments"] = deployment_count

    # Releases: one promoted per deployment, and 200 active in production.
    def plan_of(m: int, env: int) -> list[dict[str, Any]]:
        return engine.plan_to_json(
            engine.build_plan(
                strategy="canary",
                params={"steps": [10, 50, 100], "analysis_interval_seconds": 600},
                new=latest[m],
                old=latest[m] - 1 if latest[m] > 1 else None,
                staging_old=latest[m] - 1 if latest[m] > 1 else None,
                has_staging=env != 1,
            )
        )

    releases, steps = Table(Release), []
    release_rows = []
    for d, m, _env in deployments:
        release_rows.append(
            {
                "deployment_id": d,
                "version_id": stable_of(m),
                "from_version_id": previous_of(m),
                "config_id": d,
                "strategy": "canary",
                "plan": [],
                "step_index": 0,
                "state": ReleaseState.PROMOTED,
                "author_id": user_id,
                "author_label": "bench-user",
                "created_at": ago(days=3, minutes=d),
                "updated_at": ago(days=3),
                "finished_at": ago(days=3),
            }
        )
    active_states = sorted(ACTIVE_STATES - {ReleaseState.ROLLING_BACK})
    active = [dep for dep in deployments if dep[2] == 2][: n(200)]
    measured_release = None
    for i, (d, m, env) in enumerate(active):
        state = active_states[i % len(active_states)]
        plan = plan_of(m, env)
        stable, new = latest[m] - 1, latest[m]
        rid = releases.next_id + len(release_rows)
        if m == 0:
            measured_release = rid
            state = ReleaseState.PROGRESSING
        release_rows.append(
            {
                "id": rid,
                "deployment_id": d,
                "version_id": version_id[(m, new)],
                "from_version_id": version_id[(m, max(1, stable))],
                "config_id": d,
                "strategy": "canary",
                "plan": plan,
                "step_index": min(len(plan) - 1, 1 + i % max(1, len(plan) - 1)),
                "state": state,
                "paused_from": ReleaseState.PROGRESSING if state == ReleaseState.PAUSED else "",
                "required_approvals": 2,
                "traffic": {"weights": {str(stable): 90, str(new): 10}},
                "next_reconcile_at": NOW + timedelta(hours=1),
                "author_id": user_id,
                "author_label": "bench-user",
                "created_at": ago(hours=i),
                "updated_at": ago(hours=i),
            }
        )
        for s in range(30 if m == 0 else 6):
            steps.append(
                {
                    "release_id": rid,
                    "kind": ("create", "approve", "deploy", "await_ready", "traffic", "analysis")[
                        s % 6
                    ],
                    "plan_index": s % len(plan),
                    "outcome": "pass" if s % 6 == 5 else "ok",
                    "actor_label": "engine",
                    "reason": "",
                    "evidence": {
                        "stable_stats": {"requests": 1200, "error_rate": 0.001},
                        "canary_stats": {"requests": 130, "error_rate": 0.0},
                        "verdict": "pass",
                    }
                    if s % 6 == 5
                    else {},
                    "created_at": ago(hours=i, minutes=-s),
                }
            )
    counts["releases"] = releases.write(conn, release_rows)
    counts["active releases"] = len(active)
    Table(ReleaseStep).write(conn, steps)
    if measured_release is not None:
        approvers = [p for p in member_of[1] if p != user_id][:2]
        Table(Approval).write(
            conn,
            (
                {
                    "release_id": measured_release,
                    "user_id": p,
                    "decision": "approve",
                    "comment": "looks good",
                    "created_at": ago(hours=1),
                }
                for p in approvers
            ),
        )
    Table(Rollback).write(
        conn,
        (
            {
                "deployment_id": deployments[(i * 7) % deployment_count][0],
                "from_version_id": stable_of(deployments[(i * 7) % deployment_count][1]),
                "to_version_id": previous_of(deployments[(i * 7) % deployment_count][1]),
                "state": "done",
                "actor_label": "bench-user",
                "reason": "error rate",
                "created_at": ago(days=10 + i % 50),
                "completed_at": ago(days=10 + i % 50),
            }
            for i in range(n(500))
        ),
    )

    # Alerts: mostly resolved, 5% open; a tenth of the open ones assigned to bench-user.
    by_team: dict[int, list[tuple[int, int, int]]] = {t: [] for t in range(1, 21)}
    for dep in deployments:
        by_team[model_team[dep[1]]].append(dep)
    alert_total = n(50_000)
    alerting_teams = [t for t, deps in by_team.items() if deps]
    open_every = 20
    alert_rows, event_rows = [], []
    alerts = Table(Alert)
    for a in range(alert_total):
        team = RNG.choice(alerting_teams)
        d, m, env = by_team[team][RNG.randrange(len(by_team[team]))]
        is_open = a % open_every == 0
        start = ago(minutes=RNG.randrange(90 * 24 * 60))
        staff = member_of[team] or [None]
        aid = alerts.next_id + len(alert_rows)
        alert_rows.append(
            {
                "id": aid,
                "team_id": team,
                "source": "rule",
                "fingerprint": f"bench:{a}",
                "rule": ("slo_error_rate", "slo_latency", "drift", "cost_budget")[a % 4],
                "track": "stable",
                "severity": ("critical", "warning", "info")[a % 3],
                "title": f"alert {a} on model-{m:03d}",
                "summary": "Error budget burning fast.",
                "model_id": m + 1,
                "deployment_id": d,
                "labels": {"deployment": f"model-{m:03d}", "environment": envs[env - 1][0]},
                "evidence": {"burn": 14.4, "window": "1h"},
                "status": ("firing" if a % 40 == 0 else "acknowledged") if is_open else "resolved",
                "starts_at": start,
                "last_seen_at": start,
                "resolved_at": None if is_open else start + timedelta(minutes=30),
                "assignee_id": user_id if is_open and a % 200 == 0 else staff[a % len(staff)],
                "created_at": start,
                "updated_at": start,
            }
        )
        if is_open:
            event_rows.append(
                {"alert_id": aid, "kind": "fired", "at": start, "actor_label": "system:rules"}
            )
    counts["alerts"] = alerts.write(conn, alert_rows)
    Table(AlertEvent).write(conn, event_rows)

    # Review items: 20% open (a quarter of them claimed), the rest decided in the last 60 days.
    review_total = n(20_000)
    item_rows = []
    reviewed_deps = [dep for dep in deployments if dep[0] in set(reviewed)]
    for r in range(review_total):
        d, m, env = reviewed_deps[r % len(reviewed_deps)]
        team = model_team[m]
        staff = [p for p in member_of[team]] or [user_id]
        is_open = r % 5 == 0
        claimed = is_open and r % 20 == 0
        decided = not is_open
        created = ago(minutes=RNG.randrange(60 * 24 * 60))
        decider = staff[r % len(staff)]
        item_rows.append(
            {
                "ref": f"rv_bench{r:012d}",
                "team_id": team,
                "deployment_id": d,
                "model_version_id": stable_of(m),
                "config_revision": 1,
                "track": "stable",
                "request_id": f"req-{r}",
                "mode": "held",
                "reason": "high_risk",
                "prediction": {
                    "label": "declined",
                    "probabilities": {"approved": 0.4, "declined": 0.6},
                },
                "confidence": 0.6,
                "input_summary": {"income": 52000, "region": "north"},
                "status": "claimed" if claimed else ("pending" if is_open else "decided"),
                "claimed_by_id": decider if claimed else None,
                "claimed_at": NOW if claimed else None,
                "claim_expires_at": NOW + timedelta(minutes=30) if claimed else None,
                "sla_deadline": created + timedelta(hours=4),
                "decision": "confirm" if decided else "",
                "final_output": {"label": "declined"} if decided else None,
                "decided_by_id": decider if decided else None,
                "first_decided_by_id": decider if decided else None,
                "decided_at": created + timedelta(hours=1) if decided else None,
                "created_at": created,
                "updated_at": created,
            }
        )
    counts["review items"] = Table(ReviewItem).write(conn, item_rows)

    # Audit events: 500,000 over a year, about every kind of object, model-000's included.
    audit_total = n(500_000)
    kinds = [
        ("model.update", "registry.registeredmodel"),
        ("version.create", "registry.modelversion"),
        ("version.update", "registry.modelversion"),
        ("alias.set", "registry.alias"),
        ("release.create", "deployments.release"),
        ("release.decide", "deployments.release"),
        ("deployment.rollback", "deployments.deployment"),
        ("alert.acknowledge", "alerts.alert"),
    ]
    version_count = len(version_id)
    versions_of = [(m, nb) for (m, nb) in version_id]

    def audit_rows() -> Iterable[dict[str, Any]]:
        for e in range(audit_total):
            action, target_type = kinds[e % len(kinds)]
            if target_type == "registry.registeredmodel":
                m = e % model_count if e % 3 else 0
                target_id, label = m + 1, f"model-{m:03d}"
            elif target_type == "registry.modelversion":
                m, nb = versions_of[(e * 7919) % version_count]
                target_id, label = version_id[(m, nb)], f"model-{m:03d} v{nb}"
            elif target_type == "registry.alias":
                a = e % (2 * model_count)
                m = a // 2
                target_id, label = a + 1, f"model-{m:03d}@{('champion', 'challenger')[a % 2]}"
            else:
                m = e % model_count
                target_id, label = e % 2000 + 1, f"model-{m:03d}"
            who = people[e % len(people)]["username"]
            yield {
                "occurred_at": ago(seconds=(audit_total - e) * 63),
                "actor_type": "user",
                "actor_id": str(1 + e % len(people)),
                "actor_label": who,
                "action": action,
                "target_type": target_type,
                "target_id": str(target_id),
                "target_label": label,
                "team_id": model_team[m],
                "before": {"status": "registered"},
                "after": {"status": "validated"},
                "request_id": f"req-{e:08d}",
                "remote_addr": "127.0.0.1",
            }

    counts["audit events"] = Table(AuditEvent).write(conn, audit_rows())

    with conn.cursor() as cursor:
        for model in (
            Team,
            User,
            Membership,
            RegisteredModel,
            ModelVersion,
            Alias,
            Environment,
            DeploymentConfig,
            Deployment,
            Release,
            ReleaseStep,
            Approval,
            Rollback,
            Alert,
            AlertEvent,
            ReviewItem,
            AuditEvent,
        ):
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
            )
    log("seeded: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    return {
        "user_id": user_id,
        "release": measured_release,
        "deployment": active[0][0] if active else 1,
    }


# Measuring --------------------------------------------------------------------------------------


def pages(seeded: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, ratchet key, url) of every page measured."""
    return [
        ("home (what needs me)", "home", "/"),
        ("models", "models", "/models/"),
        ("deployments overview", "deployments", "/deployments/"),
        ("monitoring overview", "monitoring", "/monitoring/"),
        ("model page (1,000 versions)", "model-detail", "/models/model-000/"),
        ("release page", "release-detail", f"/releases/{seeded['release']}/"),
        ("alerts: mine", "alerts", "/alerts/"),
        ("alerts: team open", "alerts", "/alerts/?view=team"),
        ("alerts: resolved", "alerts", "/alerts/?view=resolved"),
        ("alerts: resolved p.500", "alerts", "/alerts/?view=resolved&page=500"),
        ("review queue", "reviews", "/reviews/"),
        ("reviews: decided", "reviews", "/reviews/?view=decided"),
        ("audit log", "audit-log", "/audit/"),
        ("audit log p.1000", "audit-log", "/audit/?page=1000"),
        ("audit log filtered", "audit-log", "/audit/?action=alias."),
    ]


@contextmanager
def sql_timer() -> Any:
    from django.db import connection

    spent = [0.0, 0]

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1

    with connection.execute_wrapper(wrapper):
        yield spent


def measure(client: Any, url: str, repeat: int) -> dict[str, Any]:
    status = 0
    times, sql, queries = [], [], 0
    for i in range(repeat + 2):
        with sql_timer() as spent:
            start = time.perf_counter()
            response = client.get(url)
            elapsed = time.perf_counter() - start
        status = response.status_code
        if i >= 2:
            times.append(elapsed * 1000)
            sql.append(spent[0] * 1000)
            queries = spent[1]
    times.sort()
    return {
        "status": status,
        "median": statistics.median(times),
        "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "sql": statistics.median(sql),
        "queries": queries,
    }


def explain(client: Any, url: str, slowest: int = 4) -> None:
    """EXPLAIN ANALYZE of the page's slowest queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    selects = [
        q for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")
    ]
    ranked = sorted(selects, key=lambda q: -float(q["time"]))[:slowest]
    with connection.cursor() as cursor:
        for query in ranked:
            print(f"\n-- {float(query['time']) * 1000:.1f} ms: {query['sql'][:600]}")
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            for (line,) in cursor.fetchall():
                print("   ", line)


def profile(client: Any, url: str) -> None:
    """pyinstrument of 5 requests: the call tree of our own code (library frames folded, calls
    under 1% hidden), then the functions that spend the most time themselves."""
    from pyinstrument import Profiler

    client.get(url)
    profiler = Profiler(interval=0.001)
    profiler.start()
    for _ in range(5):
        client.get(url)
    profiler.stop()
    options = {"filter_threshold": 0.01}
    print(profiler.output_text(processor_options=options))
    flat = profiler.output_text(flat=True, processor_options=options)
    print("\n".join(flat.splitlines()[:40]))


def table(rows: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    lines = [
        "| page | as | status | median ms | p95 ms | SQL ms | queries | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, who, r in rows:
        ok = "ok" if r["median"] < TARGET_MS else "OVER"
        lines.append(
            f"| {name} | {who} | {r['status']} | {r['median']:.1f} | {r['p95']:.1f} | "
            f"{r['sql']:.1f} | {r['queries']} | {ok} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {text}", flush=True)

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    log("migrated")
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_pages_seeded') IS NOT NULL")
        reused = cursor.fetchone()[0]
        if reused:  # --db: seeded by an earlier run (at its scale), migrated above
            cursor.execute("SELECT seeded FROM bench_pages_seeded")
            seeded = cursor.fetchone()[0]
            seeded = json.loads(seeded) if isinstance(seeded, str) else seeded
            log(f"reusing the data seeded at scale {seeded['scale']:g}")
            args.scale = seeded["scale"]
    if not reused:
        with transaction.atomic():
            seeded = {**seed(args.scale, log), "scale": args.scale}
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE bench_pages_seeded (seeded jsonb)")
                cursor.execute("INSERT INTO bench_pages_seeded VALUES (%s)", [Jsonb(seeded)])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    log("vacuumed and analyzed")

    User = get_user_model()
    clients = {}
    for who in ("bench-user", "bench-admin"):
        client = Client()
        client.force_login(User.objects.get(username=who))
        clients[who] = client
    chosen = pages(seeded)
    if args.pages:
        chosen = [p for p in chosen if p[1] in args.pages or p[0] in args.pages]
    if args.explain or args.profile:
        target = args.explain or args.profile
        matches = [p for p in pages(seeded) if target in (p[0], p[1])]
        if not matches:
            raise SystemExit(f"no page {target!r}: one of {[p[1] for p in pages(seeded)]}")
        for name, _, url in matches:
            print(f"\n== {name}: {url} (as {args.who})")
            (explain if args.explain else profile)(clients[args.who], url)
        return
    rows = []
    for name, _, url in chosen:
        for who in ("bench-user", "bench-admin"):
            rows.append((name, who, measure(clients[who], url, args.repeat)))
        log(f"{name}: {rows[-2][2]['median']:.1f} / {rows[-1][2]['median']:.1f} ms")
    print()
    print(
        f"pages at scale {args.scale:g}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.repeat} requests each after 2 warm-ups, in-process test Client, PostgreSQL "
        f"{connection.pg_version // 10000} on 127.0.0.1; target: median under {TARGET_MS:.0f} ms"
    )
    print(table(rows))
    over = [f"{name} ({who})" for name, who, r in rows if r["median"] >= TARGET_MS]
    print(f"\nover target: {', '.join(over) if over else 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page and user")
    parser.add_argument("--pages", nargs="*", help="only these pages (ratchet key or name)")
    parser.add_argument("--explain", help="EXPLAIN ANALYZE the slowest queries of this page")
    parser.add_argument("--profile", help="pyinstrument profile of this page")
    parser.add_argument("--who", default="bench-user", choices=["bench-user", "bench-admin"])
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--db", help="use (and keep) this database: seeded on first use, reused after"
    )
    args = parser.parse_args()
    name = args.db or f"bench_pages_{os.getpid()}"
    if args.db:
        args.keep = True
        with admin_connect(args.dsn) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            create_database(args.dsn, name)
    else:
        create_database(args.dsn, name)
    try:
        setup_django(args.dsn, name)
        run(args)
    finally:
        if "django.db" in sys.modules:  # Django started: its connections would block DROP
            sys.modules["django.db"].connections.close_all()
        if args.keep:
            print(f"kept database {name}")
        else:
            drop_database(args.dsn, name)


if __name__ == "__main__":
    main()
