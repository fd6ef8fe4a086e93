"""Benchmark of the rollback path: from the request (the API call, or the rollback button's POST)
to 100% of the requests observed at the router being served by the previous version, and to the
Kubernetes objects patched (the test suite's fake Kubernetes API), over N rollbacks per path.

Modes (each a fresh world in a temporary directory, every process stopped on exit):
- `embedded`: the demo's embedded defaults: SQLite, the filesystem broker, `manage.py runserver`,
  a Celery worker (threads pool, as `make demo` starts it), the local runtime's supervisor, its
  router and two real serving processes of the demo model.
- `redis`: PostgreSQL (a database of its own, dropped at the end) and Redis 127.0.0.1:6379 db 12,
  gunicorn with docker/gunicorn.conf.py, a prefork Celery worker, the same local runtime.
- `k8s`: as `redis`, but the deployment runs on the fake Kubernetes API (tests/k8s), started in
  this process; measures the request to the HTTPRoute written with all weight on the previous
  version, and to the last object patched (the other version's Deployment scaled to 0).

Two warm-up rollbacks per path are not counted. Before each rollback v2 serves everything and
v1 is kept warm (the state right after a promotion); the reset between rollbacks is not
measured. A client thread sends a request through the router every 2 ms and records which
version served it; "router serves v1 only" is when the first v1 answer arrived after the last
answer from another version (an upper bound: it includes the client's own lag). Each process
appends timestamps to an events file: the web process when the task is published (after the
commit), the worker when it receives and starts the task and when the runtime's set_traffic
returned, the supervisor when the router acknowledged the new table. Each rollback is printed
with those marks, then p50/p95 per path.

Each reset brings v2's serving process back up (the rollback scaled it to 0), a few seconds on
the 2-core machine, so `embedded` and `redis` take 6-10 minutes each at 30 rollbacks per path
and `k8s` (no serving processes) about 3 minutes. One mode per invocation, under the bench lock:
  flock /work/brief/bench.lock .venv/bin/python bench/rollback.py --modes embedded
  flock /work/brief/bench.lock .venv/bin/python bench/rollback.py --modes redis
  flock /work/brief/bench.lock .venv/bin/python bench/rollback.py --modes k8s
Options: --rollbacks N (per path, default 30), --paths api button, --baseline (the behaviour
before the fixes, for comparison). Needs PostgreSQL and Redis on loopback for redis and k8s.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REDIS_URL = "redis://127.0.0.1:6379/12"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- child-process roles


def _recorder() -> Any:
    path = os.environ["BENCH_EVENTS"]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(event: str, **data: Any) -> None:
        line = json.dumps({"ev": event, "t": time.time(), "pid": os.getpid(), **data}) + "\n"
        os.write(fd, line.encode())

    return record


def role_main(role: str, rest: list[str]) -> None:
    """The instrumented processes: each records its timestamps, then runs the real program."""
    record = _recorder()
    if role == "supervisor":
        from deployments.runtime import supervisor

        put = supervisor.Supervisor._put_routes

        def traced_put(self: Any, port: int, table: dict[str, Any]) -> bool:
            ok = put(self, port, table)
            if ok:
                record("router_put", port=port, weights=table["weights"])
            return ok

        supervisor.Supervisor._put_routes = traced_put  # type: ignore[method-assign]
        if os.environ.get("BENCH_BASELINE"):
            # As before the fix: no wake-up socket, the router hears of a change at a loop.
            supervisor.Supervisor._bind_wake_socket = lambda self: None  # type: ignore[method-assign]
        sys.exit(supervisor.main(rest))

    import django

    django.setup()
    from celery import signals

    if role == "worker":
        if os.environ.get("BENCH_BASELINE"):
            from deployments.engine import rollback

            rollback.switch_wait_seconds = lambda: 0.0  # as before: look again in 0.5 s
        from deployments.runtime.kubernetes import KubernetesRuntime
        from deployments.runtime.local import LocalRuntime

        for cls in (LocalRuntime, KubernetesRuntime):
            original = cls.set_traffic

            def traced(self: Any, ref: Any, split: Any, _original: Any = original) -> None:
                record("set_traffic_call", name=ref.name, weights=dict(split.weights))
                _original(self, ref, split)
                record("set_traffic", name=ref.name, weights=dict(split.weights))

            cls.set_traffic = traced  # type: ignore[method-assign]

        def received(request: Any = None, **_: Any) -> None:
            args = list(request.args or []) if request is not None else []
            record("task_received", task=request.name, arg=args[0] if args else None)

        def prerun(task: Any = None, args: Any = None, **_: Any) -> None:
            record("task_start", task=task.name, arg=(args or [None])[0])

        def postrun(task: Any = None, args: Any = None, retval: Any = None, **_: Any) -> None:
            record("task_end", task=task.name, arg=(args or [None])[0], retval=retval)

        signals.task_received.connect(received, weak=False)
        signals.task_prerun.connect(prerun, weak=False)
        signals.task_postrun.connect(postrun, weak=False)
        from celery.__main__ import main as celery_main

        sys.argv = ["celery", *rest]
        celery_main()
        return

    def published(sender: str = "", body: Any = None, **_: Any) -> None:
        args = body[0] if isinstance(body, (list, tuple)) and body else []
        record("published", task=sender, arg=args[0] if args else None)

    signals.after_task_publish.connect(published, weak=False)
    if role == "runserver":
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", "runserver", *rest])
    elif role == "gunicorn":
        from gunicorn.app.wsgiapp import run

        sys.argv = ["gunicorn", *rest]
        run()


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def wait_for(what: str, check: Any, timeout: float = 60.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


class Children:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.log_dir}")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()


class Observer:
    """One client thread: a request through the router every `gap` seconds, keep-alive, noting
    (sent, answered, version that served it)."""

    def __init__(self, url: str, gap: float = 0.002) -> None:
        parts = url.removeprefix("http://").split(":")
        self.host, self.port = parts[0], int(parts[1])
        self.gap = gap
        self.samples: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Observer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        while not self._stop.is_set():
            sent = time.time()
            try:
                conn.request("GET", "/v2/health/ready")
                response = conn.getresponse()
                response.read()
                version = response.getheader("x-served-by-version") or f"status {response.status}"
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                version = "error"
            self.samples.append((sent, time.time(), version))
            time.sleep(self.gap)
        conn.close()

    def since(self, t: float) -> list[tuple[float, float, str]]:
        return [s for s in list(self.samples) if s[0] >= t]

    def trim(self) -> None:
        self.samples = self.samples[-2000:]


@dataclass
class Sample:
    path: str
    rollback_id: int
    marks: dict[str, float] = field(default_factory=dict)  # ms from the request


# --------------------------------------------------------------------------- the world


class World:
    def __init__(self, mode: str, tmp: Path, children: Children) -> None:
        self.mode = mode
        self.tmp = tmp
        self.children = children
        self.events = tmp / "events.jsonl"
        self.events.touch()
        self.web_port = free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.db_name = f"bench_rollback_{os.getpid()}" if mode != "embedded" else ""
        self.fake: Any = None
        self.env = os.environ.copy()
        self.env.update(
            DJANGO_SETTINGS_MODULE="controlplane.settings",
            MODELPLANE_VAR_DIR=str(tmp / "var"),
            MODELPLANE_DEMO="1",
            BENCH_EVENTS=str(self.events),
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
        )
        for name in ("DATABASE_URL", "REDIS_URL", "MODELPLANE_CLOCK_FILE"):
            self.env.pop(name, None)
        if os.environ.get("BENCH_BASELINE"):
            self.env["FILESYSTEM_BROKER_POLL_SECONDS"] = "1.0"  # kombu's default
        if mode != "embedded":
            self.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{self.db_name}"
            self.env["REDIS_URL"] = REDIS_URL
        os.environ.clear()
        os.environ.update(self.env)
        for folder in ("broker/out", "broker/processed", "broker/control", "results"):
            (tmp / "var" / folder).mkdir(parents=True, exist_ok=True)

    # --- set-up ---

    def create_database(self) -> None:
        if not self.db_name:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}"')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')

    def drop_database(self) -> None:
        if not self.db_name:
            return
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def seed(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        from demo import launcher

        call_command("migrate", interactive=False, verbosity=0)
        self.password = "bench-" + os.urandom(6).hex()
        launcher.seed_people(self.password)
        with contextlib.redirect_stdout(sys.stderr):
            launcher.seed_model()
        from datetime import timedelta

        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from deployments import services as deploy
        from deployments.models import Deployment, Environment
        from identity import services as identity
        from identity.audit import Actor
        from identity.models import Membership, Team
        from registry.models import ModelVersion

        owner_user = get_user_model().objects.get(username="owner")
        owner = Actor.from_principal(owner_user)
        team = Team.objects.get(slug="demo")
        # The on-call person presses the button; the CI-style token calls the API.
        Membership.objects.filter(team=team, user__username="oncall").update(is_on_call=True)
        issued = identity.token_create(
            actor=owner,
            team=team,
            name="bench",
            scopes=["write"],
            expires_at=timezone.now() + timedelta(days=1),
        )
        self.token = issued.secret
        model = ModelVersion.objects.get(model__name=launcher.MODEL, number=1).model
        if self.mode == "k8s":
            from tests.k8s.fake_apiserver import FakeApiServer

            self.fake = FakeApiServer().start()
            self.fake.auto_ready = True
            ModelVersion.objects.filter(model=model).update(
                image="registry.example/serving@sha256:" + "a" * 64
            )
            env = deploy.environment_create(
                actor=owner,
                name="k8s-prod",
                runtime_kind="kubernetes",
                runtime_config={
                    "api_url": self.fake.url,
                    "namespace": "ml-prod",
                    "max_attempts": 2,
                    "request_timeout": 5.0,
                },
            )
            self.deployment = deploy.deployment_create(
                actor=owner, model=model, environment=env, name="bc-k8s", replicas=1
            )
        else:
            production = Environment.objects.get(name="production")
            self.deployment = Deployment.objects.get(environment=production, model=model)
        self.versions = {v.number: v for v in ModelVersion.objects.filter(model=model)}

    def start_processes(self) -> None:
        py = sys.executable
        me = str(Path(__file__).resolve())
        env = dict(self.env)
        if self.mode != "k8s":
            self.children.start(
                "supervisor",
                [py, me, "--role", "supervisor", "--state-dir", str(self.state_dir)],
                env,
            )
        worker = ["-A", "controlplane", "worker", "--without-gossip", "--without-mingle"]
        if self.mode == "embedded":
            worker += ["--pool", "threads", "--concurrency", "4"]  # as `make demo` starts it
        else:
            worker += ["--pool", "prefork", "--concurrency", "2"]
        self.children.start("worker", [py, me, "--role", "worker", *worker], env)
        if self.mode == "embedded":
            web = [py, me, "--role", "runserver", "--noreload", "--skip-checks"]
            self.children.start("web", [*web, f"127.0.0.1:{self.web_port}"], env)
        else:
            web_env = {
                **env,
                "PORT": str(self.web_port),
                "WEB_HOST": "127.0.0.1",
                "WEB_ACCESS_LOG": "0",
                "SECRET_KEY": "bench-only-" + os.urandom(8).hex(),
            }
            gunicorn = ["-c", str(ROOT / "docker" / "gunicorn.conf.py"), "controlplane.wsgi"]
            self.children.start("web", [py, me, "--role", "gunicorn", *gunicorn], web_env)

        def web_up() -> bool:
            self.children.check()
            try:
                with socket.create_connection(("127.0.0.1", self.web_port), 0.2):
                    return True
            except OSError:
                return False

        wait_for("the web process", web_up, timeout=60)
        self.wait_worker()

    def wait_worker(self) -> None:
        from controlplane.celery import ping

        result = ping.delay()
        wait_for("the worker", lambda: self.children.check() or result.ready(), timeout=60)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "var" / "local-runtime"

    # --- the runtime side ---

    def runtime(self) -> tuple[Any, Any]:
        from deployments import engine

        return engine.runtime_of(self.deployment), engine.deployment_ref(self.deployment)

    def reset(self) -> None:
        """v2 serves everything, v1 is kept warm, the database says so: as after a promotion."""
        from django.utils import timezone

        from deployments import engine
        from deployments.models import Deployment, Rollback
        from deployments.runtime.base import Track, TrafficSplit

        wait_for(
            "no pending rollback",
            lambda: not Rollback.objects.filter(state="pending").exists(),
            timeout=30,
        )
        runtime, ref = self.runtime()
        deployment = Deployment.objects.select_related("config", "environment", "model").get(
            pk=self.deployment.pk
        )
        for number, track in ((1, Track.STABLE), (2, Track.STABLE)):
            spec = engine.version_spec(deployment, deployment.config, self.versions[number], None)
            runtime.apply_version(ref, spec, track)
            runtime.scale_version(ref, number, 1)
        for number in (1, 2):
            wait_for(
                f"v{number} ready",
                lambda n=number: (
                    self.children.check() or engine.can_serve(runtime.version_status(ref, n))
                ),
                timeout=120,
            )
        split = TrafficSplit.all_to(2)
        runtime.set_traffic(ref, split)
        wait_for("v2 routed", lambda: runtime.traffic_applied(ref, split), timeout=30)
        Deployment.objects.filter(pk=deployment.pk).update(
            stable_version=self.versions[2],
            previous_stable_version=self.versions[1],
            promoted_at=timezone.now(),
        )


# --------------------------------------------------------------------------- clients


class ApiClient:
    def __init__(self, world: World) -> None:
        self.world = world
        self.conn = http.client.HTTPConnection("127.0.0.1", world.web_port, timeout=30)

    def prepare(self) -> None:
        # A fresh connection each time: gunicorn closes idle keep-alive ones after 5 s.
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.world.web_port, timeout=30)

    def rollback(self) -> tuple[int, bytes]:
        body = json.dumps({"reason": "bench"})
        headers = {
            "Authorization": f"Bearer {self.world.token}",
            "Content-Type": "application/json",
        }
        self.conn.request(
            "POST", f"/api/v1/deployments/{self.world.deployment.pk}/rollback/", body, headers
        )
        response = self.conn.getresponse()
        return response.status, response.read()


class ButtonClient:
    """The on-call person's browser: logged in, on the confirmation page, pressing the button."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.conn = http.client.HTTPConnection("127.0.0.1", world.web_port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self._login()

    def _request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        from urllib.parse import urlencode

        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = self.world.base + path
        self.conn.request(method, path, body, headers)
        response = self.conn.getresponse()
        data = response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        return response.status, data

    def _token(self, page: bytes) -> str:
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not match:
            raise RuntimeError("no CSRF token on the page")
        return match.group(1).decode()

    def _login(self) -> None:
        _, page = self._request("GET", "/login/")
        status, _ = self._request(
            "POST",
            "/login/",
            {
                "csrfmiddlewaretoken": self._token(page),
                "username": "oncall",
                "password": self.world.password,
            },
        )
        if status != 302:
            raise RuntimeError(f"login failed ({status})")

    def prepare(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.world.web_port, timeout=30)
        status, page = self._request("GET", f"/deployments/{self.world.deployment.pk}/rollback/")
        if status != 200:
            raise RuntimeError(f"confirmation page answered {status}")
        self.csrf = self._token(page)

    def rollback(self) -> tuple[int, bytes]:
        return self._request(
            "POST",
            f"/deployments/{self.world.deployment.pk}/rollback/",
            {"csrfmiddlewaretoken": self.csrf, "reason": "bench"},
        )


# --------------------------------------------------------------------------- one rollback


def read_events(path: Path, since: float) -> list[dict[str, Any]]:
    out = []
    with path.open() as fh:
        for line in fh:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event["t"] >= since:
                    out.append(event)
    return out


def one_rollback(world: World, client: Any, observer: Observer | None, path: str) -> Sample:
    from deployments.models import Rollback

    client.prepare()
    if observer is not None:
        observer.trim()
        wait_for(
            "v2 only at the router",
            lambda: (s := observer.since(time.time() - 0.05)) and {v for *_, v in s} == {"2"},
            timeout=10,
        )
    if world.fake is not None:
        world.fake.clear_log()
    last = Rollback.objects.order_by("-id").values_list("id", flat=True).first() or 0
    t0 = time.time()
    status, body = client.rollback()
    t_response = time.time()
    if status not in (202, 302):
        raise RuntimeError(f"{path} rollback answered {status}: {body[:300]!r}")
    rollback = wait_for(
        "the rollback row",
        lambda: Rollback.objects.filter(id__gt=last).order_by("id").first(),
        timeout=TIMEOUT_S,
    )
    sample = Sample(path, rollback.pk)
    marks = sample.marks
    marks["response"] = t_response
    done = wait_for(
        "the rollback done",
        lambda: Rollback.objects.filter(pk=rollback.pk, state__in=["done", "failed"]).first(),
        timeout=TIMEOUT_S,
    )
    if done.state != "done":
        raise RuntimeError(f"rollback #{done.pk} failed: {done.evidence}")
    marks["rollback done (db)"] = done.completed_at.timestamp()
    if observer is not None:

        def switched() -> float | None:
            seen = observer.since(t0)
            old = [s for s in seen if s[2] != "1"]
            last_old = max((s[0] for s in old), default=t0)
            new = [s for s in seen if s[2] == "1" and s[0] >= last_old]
            # Settled: only v1 for 200 ms after the first v1 answer following the last other.
            if new and time.time() - new[0][1] > 0.2 and not [s for s in old if s[0] > new[0][0]]:
                return min(s[1] for s in new)
            return None

        marks["router serves v1 only"] = wait_for("v1 only at the router", switched, TIMEOUT_S)
    time.sleep(0.1)  # let the last events land
    for event in read_events(world.events, t0):
        ev, t = event["ev"], event["t"]
        if ev == "published" and event.get("arg") == rollback.pk:
            marks.setdefault("task published (after commit)", t)
        elif ev == "task_received" and event.get("arg") == rollback.pk:
            marks.setdefault("task received by worker", t)
        elif ev == "task_start" and event.get("arg") == rollback.pk:
            marks.setdefault("task started", t)
        elif ev == "set_traffic_call" and event.get("weights") == {"1": 100}:
            marks.setdefault("runtime set_traffic called", t)
        elif ev == "set_traffic" and event.get("weights") == {"1": 100}:
            marks.setdefault("runtime set_traffic done", t)
        elif ev == "router_put" and event.get("weights") == {"1": 100}:
            marks.setdefault("router table applied", t)
    if world.fake is not None:
        writes = [r for r in world.fake.requests if r.method in {"PUT", "PATCH", "POST"}]
        route = [r for r in writes if "/httproutes/" in r.path]
        if route:
            marks["k8s HTTPRoute patched"] = route[0].at
        if writes:
            marks["k8s objects all patched"] = max(r.at for r in writes)
    sample.marks = {k: (v - t0) * 1000 for k, v in marks.items()}
    return sample


ORDER = [
    "response",
    "task published (after commit)",
    "task received by worker",
    "task started",
    "runtime set_traffic called",
    "runtime set_traffic done",
    "router table applied",
    "router serves v1 only",
    "k8s HTTPRoute patched",
    "k8s objects all patched",
    "rollback done (db)",
]
SHORT = {
    "response": "resp",
    "task published (after commit)": "publ",
    "task received by worker": "recv",
    "task started": "start",
    "runtime set_traffic called": "call",
    "runtime set_traffic done": "set",
    "router table applied": "router",
    "router serves v1 only": "SERVED",
    "k8s HTTPRoute patched": "ROUTE",
    "k8s objects all patched": "k8s-all",
    "rollback done (db)": "done",
}

# (stage, from mark, to mark); from "" is the request itself.
SET = "runtime set_traffic done"
STAGES = [
    ("web: request, commit, publish", "", "task published (after commit)"),
    ("broker hop", "task published (after commit)", "task received by worker"),
    ("worker: receive to task start", "task received by worker", "task started"),
    ("worker: lock, status, set_traffic", "task started", "runtime set_traffic done"),
    ("  of which set_traffic (file, fsync)", "runtime set_traffic called", SET),
    ("supervisor: wake-up to router ack", "runtime set_traffic done", "router table applied"),
    ("router ack to seen by the client", "router table applied", "router serves v1 only"),
    ("worker: task start to HTTPRoute", "task started", "k8s HTTPRoute patched"),
]


def run_mode(mode: str, rollbacks: int, paths: list[str]) -> dict[str, list[Sample]]:
    tmp = Path(tempfile.mkdtemp(prefix="mp-rb-"))
    children = Children(tmp)
    saved_env = os.environ.copy()
    world = World(mode, tmp, children)
    observer = None
    results: dict[str, list[Sample]] = {p: [] for p in paths}
    failed = False
    try:
        world.create_database()
        world.seed()
        world.start_processes()
        world.reset()
        if mode != "k8s":
            runtime, ref = world.runtime()
            observer = Observer(runtime.endpoint(ref)).start()
        clients = {"api": ApiClient(world), "button": ButtonClient(world)}
        for path in paths:
            # Warm-up, not counted: the first request of a process imports and connects.
            for _ in range(2):
                world.reset()
                one_rollback(world, clients[path], observer, path)
        for i in range(rollbacks):
            for path in paths:
                world.reset()
                sample = one_rollback(world, clients[path], observer, path)
                results[path].append(sample)
                marks = "  ".join(
                    f"{SHORT[k]} {sample.marks[k]:6.1f}" for k in ORDER if k in sample.marks
                )
                print(f"  {mode:8} {path:6} #{i + 1:<3} {marks}", flush=True)
    except BaseException:
        failed = True
        raise
    finally:
        if observer is not None:
            observer.stop()
        children.stop()
        if world.fake is not None:
            world.fake.stop()
        with contextlib.suppress(Exception):
            world.drop_database()
        os.environ.clear()
        os.environ.update(saved_env)
        if failed:
            # Keep the processes' logs and the events for a look; the rest goes.
            kept = Path(tempfile.mkdtemp(prefix=f"mp-rb-failed-{mode}-"))
            for log in [*tmp.glob("*.log"), tmp / "events.jsonl"]:
                shutil.copy(log, kept)
            for log in (tmp / "var").glob("local-runtime/deployments/*/*/logs/*.log"):
                shutil.copy(log, kept / f"{log.parents[2].name}-{log.name}")
            print(f"  logs of the failed run kept in {kept}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        role_main(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["embedded", "redis", "k8s"])
    parser.add_argument("--rollbacks", type=int, default=30, help="per path and mode")
    parser.add_argument("--paths", nargs="+", default=["api", "button"])
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="as before the fixes: kombu's 1 s filesystem polling, no supervisor wake-up, "
        "the rollback looks again after 0.5 s instead of waiting briefly for the switch",
    )
    parser.add_argument("--one-mode", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_mode:
        # Each mode runs in a process of its own: Django is configured once per process.
        results = run_mode(args.one_mode, args.rollbacks, args.paths)
        Path(args.json_out).write_text(
            json.dumps({p: [s.marks for s in samples] for p, samples in results.items()})
        )
        return 0
    for mode in args.modes:
        if mode not in ("embedded", "redis", "k8s"):
            parser.error(f"unknown mode {mode}")
    if args.baseline:
        os.environ["BENCH_BASELINE"] = "1"
    print(
        f"rollback benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{args.rollbacks} rollbacks per path and mode; times in ms from the request"
        + (" (BASELINE: the behaviour before the fixes)" if args.baseline else "")
    )
    legend = ", ".join(f"{v}={k}" for k, v in SHORT.items())
    print(f"  ({legend})", flush=True)
    summary: list[tuple[str, str, str, list[float]]] = []
    stages: list[tuple[str, str, str, list[float]]] = []
    for mode in args.modes:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--one-mode", mode]
            cmd += ["--rollbacks", str(args.rollbacks), "--json-out", out.name, "--paths"]
            code = subprocess.call([*cmd, *args.paths], cwd=ROOT)
            if code != 0:
                print(f"  mode {mode} failed (exit {code})", flush=True)
                continue
            results = json.loads(Path(out.name).read_text())
        for path, samples in results.items():
            for key in ORDER:
                values = [m[key] for m in samples if key in m]
                if values:
                    summary.append((mode, path, key, values))
            for name, start, end in STAGES:
                values = [m[end] - m.get(start, 0.0) for m in samples if end in m]
                if values:
                    stages.append((mode, path, name, values))
    print("\nmode      path    mark                               n   p50 ms   p95 ms   max ms")
    for mode, path, key, values in summary:
        flag = ""
        if key in ("router serves v1 only", "k8s HTTPRoute patched"):
            flag = "   <- target p95 < 250 ms: " + ("met" if pct(values, 95) < 250 else "MISSED")
        print(
            f"{mode:9} {path:7} {key:32} {len(values):3} {pct(values, 50):8.1f} "
            f"{pct(values, 95):8.1f} {max(values):8.1f}{flag}"
        )
    print("\nwhere the time goes (each stage on its own; p95s do not add up)")
    print("mode      path    stage                                  n   p50 ms   p95 ms   max ms")
    for mode, path, name, values in stages:
        print(
            f"{mode:9} {path:7} {name:36} {len(values):3} {pct(values, 50):8.1f} "
            f"{pct(values, 95):8.1f} {max(values):8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
