"""Release engine at scale (issue 12, target 4): N releases at once on real Celery workers against
the fake Kubernetes API; how late each step is taken after its condition is met, reconciles per
second, and whether any step was lost or taken twice.

    flock /work/brief/bench.lock .venv/bin/python bench/engine_scale.py
    .venv/bin/python bench/engine_scale.py --releases 20 --workers 1      # quick look

What it does (everything started is stopped on exit, also on Ctrl-C or an error):
- Creates a PostgreSQL database of its own (`bench_engine_<pid>` on 127.0.0.1:5432, user postgres,
  trust authentication; `--dsn` to change) and uses Redis 127.0.0.1:6379 db 13 as the broker
  (flushed before and after). Migrates, and seeds one team and `--releases` models, each with
  two versions (v1, v2), a production deployment (canary 25/50/100 %, `--interval` analysis
  windows, 10 s by default, no warm-up) and its staging deployment, both on the Kubernetes
  runtime pointed at the test suite's fake Kubernetes API (tests/k8s/fake_apiserver.py, every
  object validated against the official schemas, Deployments Ready as soon as written, routes
  accepted at once), served in this process. The pods behind it are the tests' stub model
  server (smoke tests pass).
- Starts `--workers` Celery worker processes (prefork, `--concurrency` each, as docker's
  entrypoint runs them) and one beat (the sweep every 10 s), all on controlplane.settings with
  the scripted analyzer of the tests (every analysis passes; there is no traffic to analyse).
- Round 1: creates a first release (v1) for every deployment at once. Round 2: a canary release of
  v2 for every deployment at once (staging, rehearsal, 3 canary steps with analysis windows,
  promotion). Each round ends when every release is terminal (or after `--timeout`).
- Reads the evidence afterwards. "Condition met" is taken where the evidence says exactly when:
  * analysis: the window ended (the step that opened it + warm-up + interval); the step applied
    is the analysis step's record;
  * ready: the fake API wrote the version's Deployment (it is Ready from then on); the step applied
    is the await-ready step's record;
  * next: a step due at once after the previous one (delay 0), from the previous step's record.
  p50/p95/max per kind and overall; reconciles per second (the releases' reconcile counters over
  the round's wall time); lost steps (a release not promoted, a plan step without an ok record)
  and doubled steps (a plan step recorded ok twice).

Not a test: it never fails on a figure, and never runs in `make test`. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

REDIS_URL = "redis://127.0.0.1:6379/13"
STRATEGY = {
    "steps": [25, 50, 100],
    "analysis_interval_seconds": 10,
    "analysis_warmup_seconds": 0,
    "min_requests": 1,
    "progress_deadline_seconds": 600,
}


EVENTS_ENV = "BENCH_ENGINE_EVENTS"


def install_task_hooks() -> None:
    """In a worker (`--include engine_scale`): one line per task run, with its ETA and when it
    started and ended, appended to $BENCH_ENGINE_EVENTS.<pid> (one file per process)."""
    import json

    from celery import signals

    @signals.task_prerun.connect(weak=False)
    def on_prerun(task: Any = None, **_: Any) -> None:
        task.request.bench_started = time.time()

    @signals.task_postrun.connect(weak=False)
    def on_postrun(task_id: str = "", task: Any = None, args: Any = (), **_: Any) -> None:
        eta = task.request.eta
        line = {
            "task": task.name,
            "args": list(args or ()),
            "eta": datetime.fromisoformat(eta).timestamp() if eta else None,
            "started": getattr(task.request, "bench_started", None),
            "ended": time.time(),
        }
        with open(f"{os.environ[EVENTS_ENV]}.{os.getpid()}", "a") as out:
            out.write(json.dumps(line) + "\n")


if __name__ != "__main__" and os.environ.get(EVENTS_ENV):
    install_task_hooks()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def database(dsn: str) -> Iterator[str]:
    import psycopg

    name = f"bench_engine_{os.getpid()}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def processes(
    cmds: list[tuple[list[str], Path]], env: dict[str, str]
) -> Iterator[list[subprocess.Popen]]:
    procs = []
    try:
        for cmd, log in cmds:
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=env,
                    stdout=log.open("ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


class CpuSplit:
    """CPU seconds used over a round by this process (the fake Kubernetes API, the stub pods,
    creating releases and polling), the Celery workers with their pool processes, beat, and
    the PostgreSQL backends serving the benchmark's database, via psutil."""

    def __init__(self, procs: list[subprocess.Popen], database: str) -> None:
        self.procs = procs
        self.database = database
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        import psutil

        def cpu(proc: psutil.Process) -> float:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                return times.user + times.system
            return 0.0

        out = {"bench (fake API, stub)": cpu(psutil.Process()), "workers": 0.0, "beat": 0.0}
        for proc in self.procs:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                key = "beat" if "beat" in root.cmdline() else "workers"
                out[key] += cpu(root) + sum(cpu(c) for c in root.children(recursive=True))
        # The backends serving this database (the workers keep theirs: CONN_MAX_AGE).
        out["postgresql"] = sum(
            cpu(p)
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "postgres"
            and f" {self.database} " in " ".join(p.info["cmdline"] or [])
        )
        return out

    def delta(self) -> dict[str, float]:
        end = self._sample()
        return {key: end[key] - self.start.get(key, 0.0) for key in end}


def wait_for_workers(expected: int, timeout: float = 90.0) -> None:
    from controlplane.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= expected:
            return
    raise TimeoutError(f"fewer than {expected} Celery workers answered within {timeout:.0f}s")


def seed(count: int, fake_url: str, stub_url: str) -> list[Any]:
    from deployments import services
    from identity.audit import Actor
    from tests.factories import (
        MembershipFactory,
        ModelVersionFactory,
        RegisteredModelFactory,
        TeamFactory,
        UserFactory,
    )
    from tests.support.stub_model import kubernetes_runtime_config

    def runtime_config(namespace: str) -> dict[str, Any]:
        return kubernetes_runtime_config(fake_url, stub_url, namespace, request_timeout=5.0)

    system = Actor.system("bench")
    services.environment_create(
        actor=system,
        name="staging",
        runtime_kind="kubernetes",
        runtime_config=runtime_config("ml-staging"),
    )
    production = services.environment_create(
        actor=system,
        name="production",
        runtime_kind="kubernetes",
        runtime_config=runtime_config("ml-prod"),
        staging="staging",
        is_production=True,
        metrics_kind="none",
    )
    team = TeamFactory(slug="bench")
    user = UserFactory(username="bench-maintainer")
    MembershipFactory(team=team, user=user, role="maintainer")
    actor = Actor.from_principal(user)
    deployments = []
    for i in range(count):
        model = RegisteredModelFactory(team=team, name=f"model-{i:03d}", risk_tier="low")
        for number in (1, 2):
            ModelVersionFactory(model=model, number=number)
        deployments.append(
            services.deployment_create(
                actor=actor,
                model=model,
                environment=production,
                name=f"m{i:03d}",
                strategy="canary",
                strategy_params=dict(STRATEGY),
                replicas=1,
            )
        )
    return [actor, deployments]


def run_round(actor: Any, deployments: list[Any], number: int, timeout: float) -> dict[str, Any]:
    from deployments import services
    from deployments.models import TERMINAL_STATES, Release
    from registry.models import ModelVersion

    versions = {
        v.model_id: v for v in ModelVersion.objects.filter(number=number).select_related("model")
    }
    started = time.time()
    ids = []
    for deployment in deployments:
        deployment.refresh_from_db()
        ids.append(
            services.release_create(
                actor=actor, deployment=deployment, version=versions[deployment.model_id]
            ).pk
        )
    created = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = Release.objects.filter(pk__in=ids).exclude(state__in=TERMINAL_STATES).count()
        if left == 0:
            break
        time.sleep(0.5)
    ended = time.time()
    return {"ids": ids, "started": started, "created": created, "ended": ended}


def analyse(round_: dict[str, Any], fake: Any) -> dict[str, Any]:
    from deployments import engine
    from deployments.engine.plan import AnalyzeStep, AwaitReadyStep, StepTarget
    from deployments.models import Release, ReleaseStep

    # When each Deployment object was written (the fake marks it Ready on write), by namespace
    # and name: /apis/apps/v1/namespaces/<ns>/deployments[/<name>].
    writes: dict[tuple[str, str], list[float]] = defaultdict(list)
    for req in fake.requests:
        parts = req.path.split("?", 1)[0].strip("/").split("/")
        if req.method not in ("POST", "PUT", "PATCH") or req.status >= 300:
            continue
        if len(parts) < 6 or parts[:3] != ["apis", "apps", "v1"] or parts[5] != "deployments":
            continue
        name = parts[6] if len(parts) > 6 else (req.body or {}).get("metadata", {}).get("name")
        if name:
            writes[(parts[4], name)].append(req.at)

    lags: dict[str, list[float]] = defaultdict(list)
    states: Counter[str] = Counter()
    lost = doubled = 0
    reconciles = 0
    releases = Release.objects.filter(pk__in=round_["ids"]).select_related(
        "deployment__environment__staging", "deployment__model"
    )
    steps_by_release: dict[int, list[ReleaseStep]] = defaultdict(list)
    for step in ReleaseStep.objects.filter(release_id__in=round_["ids"]).order_by("id"):
        steps_by_release[step.release_id].append(step)
    for release in releases:
        states[release.state] += 1
        reconciles += release.reconcile_count
        plan = engine.steps_of(release)
        records = steps_by_release[release.pk]

        # The record of plan step i: its action's kind ("analysis" for an analysis), at index i.
        kinds = ["analysis" if isinstance(s, AnalyzeStep) else str(s.action) for s in plan]
        taken = [
            r
            for r in records
            if r.plan_index is not None
            and r.plan_index < len(plan)
            and r.kind == kinds[r.plan_index]
            and r.outcome in ("ok", "pass")
        ]
        ok_by_index = Counter(r.plan_index for r in taken)
        if release.state != "promoted":
            lost += 1
        lost += sum(1 for i in range(len(plan)) if ok_by_index[i] == 0)
        doubled += sum(1 for n in ok_by_index.values() if n > 1)
        by_index = {r.plan_index: r for r in taken}
        for index, step in enumerate(plan):
            record = by_index.get(index)
            previous = by_index.get(index - 1)
            if record is None or previous is None:
                continue
            applied = record.created_at.timestamp()
            if isinstance(step, AnalyzeStep):
                met = previous.created_at.timestamp() + step.warmup_seconds + step.interval_seconds
                lags["analysis"].append(applied - met)
            elif isinstance(step, AwaitReadyStep):
                namespace = "ml-staging" if step.target == StepTarget.STAGING else "ml-prod"
                name = f"{release.deployment.name}-v{step.version}"
                times = [t for t in writes.get((namespace, name), []) if t <= applied]
                if times:
                    lags["ready"].append(applied - max(times))
            else:
                lags["next"].append(applied - previous.created_at.timestamp())
    wall = round_["ended"] - round_["started"]
    return {
        "lags": lags,
        "states": states,
        "lost": lost,
        "doubled": doubled,
        "reconciles": reconciles,
        "wall": wall,
        "create": round_["created"] - round_["started"],
    }


def task_runs(events: Path, since: float, until: float) -> dict[str, Any]:
    """The workers' task runs in [since, until]: how late each countdown task started after its
    ETA, and how busy the pool processes were."""
    import json

    late: list[float] = []
    busy = 0.0
    runs = 0
    for path in events.parent.glob(events.name + ".*"):
        for line in path.read_text().splitlines():
            run = json.loads(line)
            if run["started"] is None or not since <= run["started"] <= until:
                continue
            runs += 1
            busy += run["ended"] - run["started"]
            if run["eta"] is not None and run["task"] == "deployments.reconcile_release":
                late.append(run["started"] - run["eta"])
    return {"late": late, "busy": busy, "runs": runs}


def report(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}")
    states = ", ".join(f"{n} {s}" for s, n in sorted(result["states"].items()))
    print(
        f"  releases: {states}; wall {result['wall']:.1f} s "
        f"(creating them {result['create']:.1f} s)"
    )
    print(
        f"  reconciles: {result['reconciles']} = {result['reconciles'] / result['wall']:.1f}/s; "
        f"lost steps: {result['lost']}; doubled steps: {result['doubled']}"
    )
    split = ", ".join(f"{k} {v:.0f}" for k, v in result["cpu"].items())
    print(f"  CPU seconds: {split} (wall x 2 cores = {2 * result['wall']:.0f})")
    fake = result["fake"]
    if fake:
        print(
            f"  fake Kubernetes API: {len(fake)} requests "
            f"({len(fake) / max(1, result['reconciles']):.1f} per reconcile), handling "
            f"p50 {1000 * statistics.median(fake):.1f} ms, p95 {1000 * pct(fake, 0.95):.1f} ms, "
            f"{sum(fake):.0f} s in all"
        )
    tasks = result["tasks"]
    late = tasks["late"]
    line = f"  task runs: {tasks['runs']}, pool processes busy {tasks['busy']:.0f} s"
    if late:
        line += (
            f"; countdown tasks started after their ETA: p50 {statistics.median(late):.2f} s, "
            f"p95 {pct(late, 0.95):.2f} s, max {max(late):.2f} s"
        )
    print(line)
    print(f"  {'condition -> step applied':<28}{'n':>6}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    every: list[float] = []
    for kind in ("analysis", "ready", "next"):
        values = result["lags"].get(kind, [])
        every += values
        if values:
            print(
                f"  {kind:<28}{len(values):>6}{statistics.median(values):>9.2f}"
                f"{pct(values, 0.95):>9.2f}{max(values):>9.2f}"
            )
    if every:
        print(
            f"  {'all':<28}{len(every):>6}{statistics.median(every):>9.2f}"
            f"{pct(every, 0.95):>9.2f}{max(every):>9.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="processes per worker")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per round")
    parser.add_argument(
        "--interval", type=float, default=10.0, help="analysis window of each canary step (s)"
    )
    parser.add_argument(
        "--fake-without-validation",
        action="store_true",
        help="the fake Kubernetes API skips schema validation (about 28 ms per write under its "
        "one lock): measures the engine with an API server that answers at once",
    )
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    STRATEGY["analysis_interval_seconds"] = args.interval

    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    with database(args.dsn) as db_url:
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="controlplane.settings",
            DATABASE_URL=db_url,
            REDIS_URL=REDIS_URL,
            SECRET_KEY="bench-only-not-a-secret",
            MODELPLANE_VAR_DIR=str(tmp),
            MODELPLANE_ANALYZER="tests.support.analyzers.ScriptedAnalyzer",
            LOG_LEVEL="WARNING",
            PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'bench'}",
            **{EVENTS_ENV: str(tmp / "tasks")},
        )
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        from core import clock
        from deployments.runtime import factory
        from tests.k8s.fake_apiserver import FakeApiServer
        from tests.support.stub_model import stub_model_server

        clock.reset()
        call_command("migrate", verbosity=0)
        if args.fake_without_validation:
            from tests.k8s import fake_apiserver

            fake_apiserver.validate_object = lambda obj: None  # type: ignore[assignment]
        fake = FakeApiServer().start()
        fake.auto_ready = True
        # How long the fake takes to handle each request (its schema validation included), not
        # counting the HTTP server around it: one Python process answers every worker.
        served: list[float] = []
        dispatch = fake._dispatch

        def timed_dispatch(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return dispatch(*args, **kwargs)
            finally:
                served.append(time.perf_counter() - started)

        fake._dispatch = timed_dispatch  # type: ignore[method-assign]
        factory.clear_cache()
        try:
            with stub_model_server() as stub_url:
                actor, deployments = seed(args.releases, fake.url, stub_url)
                celery = [sys.executable, "-m", "celery", "-A", "controlplane"]
                cmds = [
                    (
                        [
                            *celery,
                            "worker",
                            "-n",
                            f"w{i}@%h",
                            "--pool",
                            "prefork",
                            "--concurrency",
                            str(args.concurrency),
                            "--without-gossip",
                            "--without-mingle",
                            "--include",
                            "engine_scale",
                            "--loglevel",
                            "WARNING",
                        ],
                        tmp / f"worker{i}.log",
                    )
                    for i in range(args.workers)
                ]
                cmds.append(
                    (
                        [*celery, "beat", "--schedule", str(tmp / "beat"), "--loglevel", "WARNING"],
                        tmp / "beat.log",
                    )
                )
                with processes(cmds, env) as procs:
                    wait_for_workers(args.workers)
                    print(
                        f"{args.releases} deployments, {args.workers} workers x "
                        f"{args.concurrency} processes, PostgreSQL, Redis, fake Kubernetes API"
                        f"{' (no schema validation)' if args.fake_without_validation else ''}; "
                        f"canary {STRATEGY['steps']} with "
                        f"{STRATEGY['analysis_interval_seconds']} s windows "
                        f"({datetime.now():%Y-%m-%d %H:%M})"
                    )
                    for number, title in (
                        (1, "round 1: first releases (v1)"),
                        (2, "round 2: canary v2"),
                    ):
                        fake.clear_log()
                        served.clear()
                        cpu = CpuSplit(procs, db_url.rsplit("/", 1)[1])
                        round_ = run_round(actor, deployments, number, args.timeout)
                        result = analyse(round_, fake)
                        result["cpu"] = cpu.delta()
                        result["fake"] = list(served)
                        result["tasks"] = task_runs(
                            tmp / "tasks", round_["started"], round_["ended"]
                        )
                        report(title, result)
        finally:
            fake.stop()
            redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"\nlogs: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
