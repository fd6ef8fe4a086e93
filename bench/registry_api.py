"""The CI REST API against MLflow's model registry server (issue 12, target 1): requests per
second and latency of the operations a CI pipeline calls, both servers side by side.

    flock /work/brief/bench.lock .venv/bin/python bench/registry_api.py
    .venv/bin/python bench/registry_api.py --seconds 3 --concurrency 1,16   # quick look
    .venv/bin/python bench/registry_api.py --only ours --profile var/pyspy  # py-spy flame data

Setup of the peer, once (its own virtual environment, never a project dependency):

    python3.12 -m venv /work/bench-venvs/mlflow   # any Python >= 3.10 MLflow supports;
    # with pyenv: PYENV_VERSION=3.12.1 python3.12 -m venv ..., or python3 (3.11) if no 3.12
    /work/bench-venvs/mlflow/bin/pip install "mlflow==3.17.2" psycopg2-binary

(`--mlflow-venv` points elsewhere). `--profile DIR` needs py-spy, a tool not a project
dependency: `.venv/bin/pip install py-spy` (then `py-spy` raw stacks: fold them with any flame
graph tool, or count frames with grep). The CPU split needs psutil, not a project dependency
either: `.venv/bin/pip install psutil`.

What it does:
- Starts its own redis-server on a free loopback port (the control plane's broker and cache),
  creates two PostgreSQL databases on 127.0.0.1:5432 (user postgres, trust authentication;
  `--dsn` to change): `bench_reg_ours_<pid>` and `bench_reg_mlflow_<pid>`.
- Seeds the same data on both sides: one model (`bench-model`) with 10,000 versions and 50 other
  models with 10 versions each, then ANALYZEs both databases. Ours is migrated and seeded through
  the ORM (bulk inserts, one write token of the owning team, one environment, deployment and
  release for the release-status read); MLflow's tables are created by `mlflow db upgrade`, one
  model and version are made through its REST API and cloned in SQL.
- Runs each server with 2 worker processes: ours is gunicorn with `docker/gunicorn.conf.py` as in
  production (DEBUG off, PostgreSQL, Redis, access log on, a Bearer token); MLflow is
  `mlflow server --workers 2` (uvicorn). uvicorn's multi-worker path leaves Nagle's algorithm on
  for accepted sockets (uvicorn #3149: its listening socket has proto 0, so asyncio never sets
  TCP_NODELAY, and every keep-alive request waits ~40 ms on delayed ACK); the benchmark puts a
  `sitecustomize.py` on MLflow's PYTHONPATH that rebuilds uvicorn's bound socket with
  proto=IPPROTO_TCP, which is exactly the upstream fix (uvicorn PR #3155).
- Warms each server up before measuring it: every operation for a moment at concurrency 4 (each
  worker imports and caches what its first requests need; MLflow's first requests cost seconds of
  CPU), then waits until the server's processes are idle, so no cell pays for another's start.
- Drives both with the same closed-loop aiohttp client (one keep-alive session, `c` tasks each
  sending its next request when the previous answers), for `--seconds` per cell (at most
  `--requests`), after a short warm-up. Operations: read one version (a random one of the
  10,000), list a model's versions (first page, 50 per page; and page 200, as each server's own
  next link names it: our cursor, MLflow's offset page token), read a model, register a version,
  and ours alone: the release-status read CI polls (`GET /api/v1/releases/{id}/`).
- Prints, per operation and concurrency, rps, p50 and p95 in ms, the ratio ours/MLflow, and the
  CPU time per request of the client, the server processes and the PostgreSQL backends serving
  that database (from /proc through psutil).
- Stops everything it started (also on Ctrl-C or an error) and drops both databases.

Talks only to 127.0.0.1. Not a test: it never fails on a figure, and never runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
VERSIONS = 10_000
OTHER_MODELS = 50
OTHER_VERSIONS = 10
PAGE = 50
# Page 200 of the seeded versions (50 a page, newest first: numbers 50 to 1), as each server's
# own `next` link names it: our cursor holds the last number seen (versions below 51), MLflow's
# page token an offset (9,950 rows skipped). Versions registered during the run come first in
# the list, so neither page moves.
DEEP_CURSOR = quote(base64.b64encode(f"p={VERSIONS - 199 * PAGE + 1}".encode()).decode())
MLFLOW_DEEP_TOKEN = quote(base64.b64encode(json.dumps({"offset": 199 * PAGE}).encode()).decode())
INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "age": {"type": "number", "minimum": 0},
        "income": {"type": "number"},
        "plan": {"enum": ["basic", "pro"]},
    },
    "required": ["age", "plan"],
    "additionalProperties": False,
}

# uvicorn #3149, worked around in MLflow's processes only (see the docstring).
SITECUSTOMIZE = """
import socket
try:
    import uvicorn.config as _config
except Exception:  # not a uvicorn process
    _config = None
if _config is not None:
    _bind = _config.Config.bind_socket

    def bind_socket(self):
        sock = _bind(self)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            fixed = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            fixed.set_inheritable(True)
            return fixed
        return sock

    _config.Config.bind_socket = bind_socket
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# Processes and databases -----------------------------------------------------------------------


class Stack:
    """Everything the benchmark starts, stopped in reverse order whatever happens."""

    def __init__(self, dsn: str, keep: bool) -> None:
        self.dsn = dsn
        self.keep = keep
        self.procs: list[subprocess.Popen[bytes]] = []
        self.databases: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))

    def start(self, cmd: list[str], log: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("ab")
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.dsn, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)
        if not self.keep:
            with psycopg.connect(self.dsn, dbname="postgres", autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"kept: databases {self.databases}, logs in {self.tmp}")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status < 500:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


def pg_url(dsn: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    return f"postgresql://{user}@{host}:{port}/{name}"


def analyze(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, dbname=name, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# Our side --------------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    database: str
    headers: dict[str, str] = field(default_factory=dict)
    release_id: int | None = None


def ours_env(dsn: str, database: str, redis_url: str, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "MODELPLANE_", "DEBUG", "WEB_"))
    }
    env.update(
        DATABASE_URL=pg_url(dsn, database).replace("postgresql://", "postgres://"),
        REDIS_URL=redis_url,
        SECRET_KEY="bench-only-not-a-secret",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SETTINGS_MODULE="controlplane.settings",
        WEB_HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        LOG_LEVEL="INFO",
        MODELPLANE_VAR_DIR=str(Path(tempfile.gettempdir()) / f"bench-registry-var-{os.getpid()}"),
    )
    return env


SEED_OURS = r"""
import hashlib, json, sys
from datetime import timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import transaction
from django.utils import timezone
from identity.audit import Actor
from identity.models import Team
from identity.services import token_create
from registry.models import ModelVersion, RegisteredModel
from deployments import services as deployments

cfg = json.loads(sys.argv[1])
system = Actor.system("bench")
team = Team.objects.create(slug="bench", name="Bench")
def versions_of(model, count):
    rows = [
        ModelVersion(
            model=model, number=n, artifact_uri=f"s3://artifacts/{model.name}/{n}.mpkg",
            artifact_digest="sha256:" + hashlib.sha256(f"{model.name}-{n}".encode()).hexdigest(),
            input_schema=cfg["schema"], framework="sklearn", source_commit=f"{n:040x}",
            training_metrics={"auc": 0.9}, tags=["bench"],
        )
        for n in range(1, count + 1)
    ]
    ModelVersion.objects.bulk_create(rows, batch_size=2000)
    RegisteredModel.objects.filter(pk=model.pk).update(last_version_number=count)
with transaction.atomic():
    main = RegisteredModel.objects.create(name=cfg["model"], team=team, description="bench")
    versions_of(main, cfg["versions"])
    for i in range(cfg["others"]):
        other = RegisteredModel.objects.create(name=f"other-{i:02d}", team=team)
        versions_of(other, cfg["other_versions"])
issued = token_create(actor=system, team=team, name="ci", scopes=["read", "write"],
                      expires_at=timezone.now() + timedelta(days=1))
main.refresh_from_db()
env = deployments.environment_create(
    actor=system, name="production", runtime_kind="kubernetes",
    runtime_config={"api_url": "http://127.0.0.1:9", "namespace": "models"})
deployment = deployments.deployment_create(
    actor=system, model=main, environment=env, strategy="canary",
    strategy_params={"steps": [10, 50, 100], "analysis_interval_seconds": 75, "min_requests": 10})
release = deployments.release_create(
    actor=system, deployment=deployment, version=main.versions.get(number=cfg["versions"]))
print(json.dumps({"secret": issued.secret, "release": release.pk}))
"""


def start_ours(stack: Stack, dsn: str, redis_url: str) -> Side:
    database = stack.create_database(f"bench_reg_ours_{os.getpid()}")
    port = free_port()
    env = ours_env(dsn, database, redis_url, port)
    cfg = {
        "model": MODEL,
        "versions": VERSIONS,
        "others": OTHER_MODELS,
        "other_versions": OTHER_VERSIONS,
        "schema": INPUT_SCHEMA,
    }
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", SEED_OURS, json.dumps(cfg)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"seeding ours failed:\n{out.stderr[-4000:]}")
    seeded = json.loads(out.stdout.strip().splitlines()[-1])
    analyze(dsn, database)
    print(f"ours: migrated, seeded and analyzed in {time.monotonic() - t0:.1f}s")
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "docker" / "gunicorn.conf.py"),
        "controlplane.wsgi:application",
    ]
    proc = stack.start(cmd, "ours.log", cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc, stack.tmp / "ours.log")
    return Side(
        "ours",
        url,
        proc,
        database,
        headers={"Authorization": f"Bearer {seeded['secret']}"},
        release_id=seeded["release"],
    )


# MLflow's side ---------------------------------------------------------------------------------


def start_mlflow(stack: Stack, dsn: str, venv: Path) -> Side:
    database = stack.create_database(f"bench_reg_mlflow_{os.getpid()}")
    # psycopg2 (installed with MLflow): MLflow 3 otherwise asks for psycopg 3.
    uri = pg_url(dsn, database).replace("postgresql://", "postgresql+psycopg2://")
    mlflow = str(venv / "bin" / "mlflow")
    site = stack.tmp / "mlflow-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHON"))}
    env["PYTHONPATH"] = str(site)
    t0 = time.monotonic()
    subprocess.run([mlflow, "db", "upgrade", uri], env=env, check=True, capture_output=True)
    port = free_port()
    artifacts = stack.tmp / "mlflow-artifacts"
    cmd = [
        mlflow,
        "server",
        "--backend-store-uri",
        uri,
        "--default-artifact-root",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    proc = stack.start(cmd, "mlflow.log", env=env, cwd=stack.tmp)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, stack.tmp / "mlflow.log")
    side = Side("mlflow", url, proc, database)
    seed_mlflow(side, dsn)
    analyze(dsn, database)
    print(f"mlflow: migrated, seeded and analyzed in {time.monotonic() - t0:.1f}s")
    return side


def seed_mlflow(side: Side, dsn: str) -> None:
    """One model and one version through the REST API, then cloned in SQL: same rows as the
    server writes, without 10,000 round trips."""
    import urllib.request

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{side.url}/api/2.0/mlflow/{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    names = [MODEL] + [f"other-{i:02d}" for i in range(OTHER_MODELS)]
    for name in names:
        post("registered-models/create", {"name": name, "description": "bench"})
        post(
            "model-versions/create",
            {"name": name, "source": f"s3://artifacts/{name}/1.mpkg", "description": ""},
        )
    with psycopg.connect(dsn, dbname=side.database, autocommit=True) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'model_versions' ORDER BY ordinal_position"
            )
        ]
        select = ", ".join(
            "n.n"
            if c == "version"
            else "replace(source, '/1.mpkg', '/' || n.n || '.mpkg')"
            if c == "source"
            else c
            for c in columns
        )
        insert = (
            f"INSERT INTO model_versions ({', '.join(columns)}) "
            f"SELECT {select} FROM model_versions, generate_series(2, %s) AS n(n) "
            "WHERE model_versions.version = 1 AND model_versions.name = %s"
        )
        conn.execute(insert, (VERSIONS, MODEL))
        for name in names[1:]:
            conn.execute(insert, (OTHER_VERSIONS, name))


# The client --------------------------------------------------------------------------------------


@dataclass
class Operation:
    key: str
    label: str
    method: str
    path: Callable[[random.Random], str]
    body: Callable[[random.Random], dict] | None = None


def operations(side: Side) -> list[Operation]:
    if side.name == "ours":
        base = f"/api/v1/models/{MODEL}"
        return [
            Operation(
                "read_version",
                "read one version",
                "GET",
                lambda r: f"{base}/versions/{r.randint(1, VERSIONS)}/",
            ),
            Operation(
                "list_versions", "list versions, first page", "GET", lambda r: f"{base}/versions/"
            ),
            Operation(
                "list_versions_p200",
                "list versions, page 200",
                "GET",
                lambda r: f"{base}/versions/?cursor={DEEP_CURSOR}",
            ),
            Operation("read_model", "read a model", "GET", lambda r: f"{base}/"),
            Operation(
                "register",
                "register a version",
                "POST",
                lambda r: f"{base}/versions/",
                lambda r: {
                    "artifact_uri": f"s3://artifacts/{MODEL}/new-{r.random()}.mpkg",
                    "artifact_digest": digest(str(r.random())),
                    "input_schema": INPUT_SCHEMA,
                    "framework": "sklearn",
                },
            ),
            Operation(
                "release_status",
                "release status (CI poll)",
                "GET",
                lambda r: f"/api/v1/releases/{side.release_id}/",
            ),
        ]
    api = "/api/2.0/mlflow"
    return [
        Operation(
            "read_version",
            "read one version",
            "GET",
            lambda r: f"{api}/model-versions/get?name={MODEL}&version={r.randint(1, VERSIONS)}",
        ),
        Operation(
            "list_versions",
            "list versions, first page",
            "GET",
            lambda r: f"{api}/model-versions/search?filter=name%3D%27{MODEL}%27&max_results={PAGE}",
        ),
        Operation(
            "list_versions_p200",
            "list versions, page 200",
            "GET",
            lambda r: (
                f"{api}/model-versions/search?filter=name%3D%27{MODEL}%27&max_results={PAGE}"
                f"&page_token={MLFLOW_DEEP_TOKEN}"
            ),
        ),
        Operation(
            "read_model",
            "read a model",
            "GET",
            lambda r: f"{api}/registered-models/get?name={MODEL}",
        ),
        Operation(
            "register",
            "register a version",
            "POST",
            lambda r: f"{api}/model-versions/create",
            lambda r: {"name": MODEL, "source": f"s3://artifacts/{MODEL}/new-{r.random()}.mpkg"},
        ),
    ]


class CpuMeter:
    """CPU seconds used by the client, the server's processes and the database's backends."""

    def __init__(self, side: Side, dsn: str) -> None:
        self.side = side
        self.dsn = dsn
        self.client = psutil.Process()

    def _server_pids(self) -> list[int]:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.side.proc.pid)
            return [root.pid] + [p.pid for p in root.children(recursive=True)]
        return []

    def _pg_pids(self) -> list[int]:
        with psycopg.connect(self.dsn, dbname="postgres", autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.side.database,)
            ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def _cpu(pids: list[int]) -> dict[int, float]:
        out = {}
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                out[pid] = t.user + t.system
        return out

    def snapshot(self) -> tuple[float, dict[int, float], dict[int, float]]:
        t = self.client.cpu_times()
        return t.user + t.system, self._cpu(self._server_pids()), self._cpu(self._pg_pids())

    def since(self, before: tuple[float, dict[int, float], dict[int, float]]) -> dict[str, float]:
        after = self.snapshot()

        def delta(a: dict[int, float], b: dict[int, float]) -> float:
            return sum(v - b.get(pid, 0.0) for pid, v in a.items())

        return {
            "client": after[0] - before[0],
            "server": delta(after[1], before[1]),
            "postgres": delta(after[2], before[2]),
        }


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(
    side: Side, op: Operation, concurrency: int, seconds: float, max_requests: int, seed: int
) -> tuple[int, int, float, list[float]]:
    rng = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    headers = {**side.headers, "Accept": "application/json"}
    latencies: list[float] = []
    errors = 0
    sent = 0
    first_error: list[str] = []
    async with aiohttp.ClientSession(side.url, connector=connector, headers=headers) as session:

        async def one() -> None:
            nonlocal errors
            path = op.path(rng)
            body = op.body(rng) if op.body else None
            t0 = time.perf_counter()
            async with session.request(op.method, path, json=body) as response:
                await response.read()
                if response.status >= 300:
                    errors += 1
                    if not first_error:
                        first_error.append(f"{response.status} {(await response.text())[:300]}")
                    return
            latencies.append(time.perf_counter() - t0)

        # Warm-up: every connection opened, caches and plans primed.
        await asyncio.gather(*(one() for _ in range(concurrency * 2)))
        latencies.clear()
        errors = 0
        deadline = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal sent
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                await one()

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    if first_error:
        print(f"  {side.name} {op.key} c={concurrency}: first error {first_error[0]}")
    return len(latencies), errors, elapsed, latencies


def profile_workers(side: Side, out: Path, label: str, seconds: float) -> list[subprocess.Popen]:
    spy = Path(sys.executable).parent / "py-spy"
    procs = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(side.proc.pid).children():
            target = out / f"{label}-{child.pid}.txt"
            procs.append(
                subprocess.Popen(
                    [
                        str(spy),
                        "record",
                        "--pid",
                        str(child.pid),
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        "--output",
                        str(target),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return procs


def settle(side: Side, meter: CpuMeter, args: argparse.Namespace) -> None:
    """Every operation for a moment (first requests import and cache), then wait until the
    server's processes are idle (at most 30 s), so that no measured cell pays for start-up."""
    t0 = time.monotonic()
    for op in operations(side):
        if args.operations and op.key not in args.operations:
            continue
        asyncio.run(drive(side, op, 4, 1.5, 200, args.seed + 1))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = meter.snapshot()
        time.sleep(0.5)
        if meter.since(before)["server"] < 0.05:  # under 10% of a core
            break
    print(f"{side.name}: warmed up and idle in {time.monotonic() - t0:.1f}s", flush=True)


def run_side(
    side: Side, dsn: str, args: argparse.Namespace, results: dict[tuple[str, str, int], Result]
) -> None:
    meter = CpuMeter(side, dsn)
    settle(side, meter, args)
    for op in operations(side):
        if args.operations and op.key not in args.operations:
            continue
        for concurrency in args.concurrency:
            spies = []
            if args.profile and side.name == "ours":
                spies = profile_workers(
                    side, args.profile, f"{op.key}-c{concurrency}", args.seconds
                )
            before = meter.snapshot()
            n, errors, elapsed, latencies = asyncio.run(
                drive(side, op, concurrency, args.seconds, args.requests, args.seed)
            )
            cpu = meter.since(before)
            for spy in spies:
                spy.wait(args.seconds + 30)
            result = Result(n, errors, elapsed, latencies, cpu)
            results[(side.name, op.key, concurrency)] = result
            per = {k: v / max(n, 1) * 1000 for k, v in cpu.items()}
            print(
                f"  {side.name:6} {op.key:15} c={concurrency:<3} {result.rps:8.1f} rps  "
                f"p50 {result.pct(0.5):8.1f} ms  p95 {result.pct(0.95):8.1f} ms  "
                f"errors {errors}  cpu ms/req client {per['client']:.1f} "
                f"server {per['server']:.1f} pg {per['postgres']:.1f}",
                flush=True,
            )


def report(results: dict[tuple[str, str, int], Result], args: argparse.Namespace) -> None:
    labels = {
        "read_version": "read one version",
        "list_versions": "list a model's versions, first page",
        "list_versions_p200": "list a model's versions, page 200",
        "read_model": "read a model",
        "register": "register a version",
        "release_status": "release status (CI poll; no MLflow peer)",
    }
    print()
    print(
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"{args.seconds:g}s per cell, rps (p50 / p95 ms), ratio ours/MLflow"
    )
    print()
    print("| operation | " + " | ".join(f"c={c}" for c in args.concurrency) + " |")
    print("|---|" + "---|" * len(args.concurrency))
    for key, label in labels.items():
        cells = []
        for c in args.concurrency:
            ours = results.get(("ours", key, c))
            peer = results.get(("mlflow", key, c))
            parts = []
            if ours:
                parts.append(f"{ours.rps:,.0f} ({ours.pct(0.5):,.1f} / {ours.pct(0.95):,.0f})")
            if peer:
                parts.append(f"vs {peer.rps:,.1f} ({peer.pct(0.5):,.1f} / {peer.pct(0.95):,.0f})")
            if ours and peer and peer.rps:
                parts.append(f"**{ours.rps / peer.rps:.2f}x**")
            cells.append(" ".join(parts) or "-")
        if any(c != "-" for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("CPU ms per request (client / server processes / PostgreSQL backends):")
    print()
    print("| operation | c | ours | MLflow |")
    print("|---|---|---|---|")
    for key, label in labels.items():
        for c in args.concurrency:
            row = []
            for name in ("ours", "mlflow"):
                r = results.get((name, key, c))
                if r is None:
                    row.append("-")
                    continue
                n = max(r.requests, 1)
                row.append(
                    " / ".join(
                        f"{r.cpu[k] / n * 1000:.1f}" for k in ("client", "server", "postgres")
                    )
                )
            if row != ["-", "-"]:
                print(f"| {label} | {c} | {row[0]} | {row[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--mlflow-venv", type=Path, default=Path("/work/bench-venvs/mlflow"))
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per cell")
    parser.add_argument("--requests", type=int, default=5000, help="most requests per cell")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64]
    )
    parser.add_argument("--only", choices=["ours", "mlflow"])
    parser.add_argument(
        "--operations",
        type=lambda s: s.split(","),
        help="comma-separated: read_version,list_versions,list_versions_p200,read_model,register,"
        "release_status",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of our workers here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    stack = Stack(args.dsn, args.keep)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[tuple[str, str, int], Result] = {}
    try:
        redis_port = free_port()
        redis = stack.start(
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            "redis.log",
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.3)
        if redis.poll() is not None:
            raise RuntimeError("redis-server did not start")
        sides: list[Side] = []
        if args.only != "mlflow":
            sides.append(start_ours(stack, args.dsn, redis_url))
        if args.only != "ours":
            sides.append(start_mlflow(stack, args.dsn, args.mlflow_venv))
        # One side at a time on the CPU: the other server idles while one is measured.
        for side in sides:
            run_side(side, args.dsn, args, results)
        report(results, args)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stack.close()


if __name__ == "__main__":
    main()
