"""`make demo` once Django is set up (demo/__main__.py): the whole product on one machine with no
servers.

It migrates a SQLite database, creates a demo team (owner, approver, on-call), trains a small real
model into two versions and registers them by digest, sets up `staging` and `production` on the
local runtime, and starts the web portal, a Celery worker and beat (filesystem broker unless
REDIS_URL is set), the local runtime's supervisor and a traffic generator. v1 is released to
production at once; v2 waits for an approver in the browser. Ctrl-C stops everything it started.
It refuses to run against a database other than its own SQLite file."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from alerts import services as alert_setup
from alerts.models import EscalationPolicy, Schedule
from deployments import engine
from deployments import services as deploy
from deployments.models import Deployment, Environment, Release
from identity.audit import Actor
from identity.models import Membership, Team
from registry import services as registry
from registry.models import ModelVersion, RegisteredModel
from serving.demo_model import build_demo_versions

ROOT = Path(__file__).resolve().parent.parent
MODEL = "breast-cancer"
DEPLOYMENT = "breast-cancer"
ON_CALL_SCHEDULE = "Demo on-call"
# Each canary step holds 75 s: at 20 requests/s a 20% canary sees ~300 requests, and 1 s
# scrapes give the statistical comparison its 25 samples of 3 s per side (the shortest window
# the analysis allows: deployments.analysis.minimum_analysis_window_seconds).
DEMO_STRATEGY = {
    "steps": [20, 50, 100],
    "analysis_interval_seconds": 75,
    "min_requests": 50,
    "progress_deadline_seconds": 120,
}


def var_dir() -> Path:
    return Path(settings.VAR_DIR)


def seed_people(password: str) -> dict[str, str]:
    """Demo people and team (idempotent: a re-run resets the printed passwords)."""
    user_model = get_user_model()
    team, _ = Team.objects.get_or_create(slug="demo", defaults={"name": "Demo team"})
    people = {
        "owner": {"role": "owner", "is_approver": False, "is_on_call": False},
        "approver": {"role": "maintainer", "is_approver": True, "is_on_call": False},
        "oncall": {"role": "viewer", "is_approver": False, "is_on_call": True},
    }
    for username, duties in people.items():
        user, _ = user_model.objects.get_or_create(username=username)
        user.set_password(password)
        user.email = f"{username}@demo.local"
        user.is_staff = user.is_superuser = username == "owner"
        user.save()
        Membership.objects.update_or_create(team=team, user=user, defaults=duties)
    return dict.fromkeys(people, password)


def seed_model() -> None:
    """Train and register the two demo versions, and set up the environments (idempotent)."""
    owner = Actor.from_principal(get_user_model().objects.get(username="owner"))
    team = Team.objects.get(slug="demo")
    model = RegisteredModel.objects.filter(name=MODEL).first()
    if model is None:
        model = registry.model_create(
            actor=owner,
            team=team,
            name=MODEL,
            risk_tier="medium",
            description="Breast-cancer classifier (scikit-learn's "
            "bundled dataset): the demo model.",
            tags=["demo"],
        )
    if model.last_version_number < 2:
        out = var_dir() / "artifacts" / "demo"
        out.mkdir(parents=True, exist_ok=True)
        print("  Training the demo model (two versions)...", flush=True)
        for info in build_demo_versions(out):
            manifest = info.manifest
            registry.version_register(
                actor=owner,
                model=model,
                artifact_uri=Path(info.path).resolve().as_uri(),
                artifact_digest=info.digest,
                framework=manifest.get("format", "sklearn-skops"),
                input_schema=manifest["input_schema"],
                output_schema=manifest["output_schema"],
                example_requests=manifest.get("example_requests", [])[:3],
                baseline_profile=manifest["baseline_profile"],
                training_metrics=manifest.get("training_metrics", {}),
                config={"schema_version": 1, "pipeline": manifest.get("format")},
                source_commit="demo",
                training_data_ref="sklearn:load_breast_cancer",
            )
    state_dir = str(var_dir() / "local-runtime")
    if not Environment.objects.filter(name="staging").exists():
        deploy.environment_create(
            actor=owner,
            name="staging",
            runtime_kind="local",
            runtime_config={"state_dir": state_dir, "namespace": "staging"},
        )
    if not Environment.objects.filter(name="production").exists():
        deploy.environment_create(
            actor=owner,
            name="production",
            runtime_kind="local",
            runtime_config={"state_dir": state_dir, "namespace": "production"},
            metrics_kind="local",
            metrics_scrape_interval_seconds=1.0,  # the demo scrapes every second
            staging="staging",
            is_production=True,
            vcpu_hour_price=0.04,
            gib_hour_price=0.005,
        )
    production = Environment.objects.get(name="production")
    if not Deployment.objects.filter(environment=production, model=model).exists():
        deploy.deployment_create(
            actor=owner,
            model=model,
            environment=production,
            name=DEPLOYMENT,
            strategy="canary",
            strategy_params=DEMO_STRATEGY,
            replicas=1,
            # The demo's "break v2" switch (POST /-/faults) is only open with this on.
            env={"SERVING_ALLOW_FAULTS": "1"},
            slo_latency_p95_ms=250,
            slo_error_rate=0.02,
        )


def seed_on_call() -> None:
    """The demo team's on-call: `oncall` holds a weekly rotation, and the default escalation
    policy goes to that schedule, then to the owner, twice over; the deployment gets its
    rollback notes (idempotent)."""
    owner = Actor.from_principal(get_user_model().objects.get(username="owner"))
    team = Team.objects.get(slug="demo")
    schedule = Schedule.objects.filter(team=team, name=ON_CALL_SCHEDULE).first()
    if schedule is None:
        today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        schedule = alert_setup.schedule_create(
            actor=owner,
            team=team,
            name=ON_CALL_SCHEDULE,
            time_zone="UTC",
            description="The demo's rotation: one person, handing over on Mondays.",
            layers=[
                {
                    "name": "primary",
                    "rotation_start": today - timedelta(days=today.weekday()),
                    "shift_hours": 168,
                    "members": ["oncall"],
                }
            ],
        )
    if not EscalationPolicy.objects.filter(team=team).exists():
        alert_setup.policy_create(
            actor=owner,
            team=team,
            name="Demo escalation",
            is_default=True,
            repeat=1,
            steps=[
                {"target": "schedule", "schedule": schedule.pk, "wait_minutes": 5},
                {"target": "team_owners", "wait_minutes": 10},
            ],
        )
    deployment = Deployment.objects.get(name=DEPLOYMENT, environment__name="production")
    if not deployment.rollback_notes:
        deploy.deployment_configure(
            actor=owner,
            deployment=deployment,
            rollback_notes="Rolling back is safe at any time: v1 is the last healthy version. "
            "After rolling back, press Heal on the demo switches before releasing again.",
        )


def release_version(number: int, *, approve: bool) -> Any:
    """Create a release of vN (as the owner); approve it as the approver when asked."""
    users = get_user_model().objects
    deployment = Deployment.objects.get(name=DEPLOYMENT, environment__name="production")
    active = deployment.releases.active().first()
    if active is not None or (
        deployment.stable_version and deployment.stable_version.number >= number
    ):
        return active
    version = ModelVersion.objects.get(model__name=MODEL, number=number)
    release = deploy.release_create(
        actor=Actor.from_principal(users.get(username="owner")),
        deployment=deployment,
        version=version,
    )
    if approve and release.state == "awaiting_approval":
        deploy.release_decide(
            actor=Actor.from_principal(users.get(username="approver")),
            release=release,
            decision="approve",
            comment="demo: first version, approved at start-up",
        )
    return release


class Processes:
    """Children in their own process groups, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str], quiet: bool = True) -> None:
        log = (self.log_dir / f"{name}.log").open("ab") if quiet else None
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if quiet else None,
            start_new_session=True,
        )
        self.children.append((name, proc))

    def dead(self) -> list[str]:
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop(self) -> None:
        for _, proc in reversed(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


def wait_until_promoted(number: int, procs: Processes, timeout: float) -> bool:
    """Until the release of vN has finished as promoted (not only its promote step)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release = (
            Release.objects.filter(
                deployment__name=DEPLOYMENT,
                deployment__environment__name="production",
                version__number=number,
            )
            .order_by("-id")
            .first()
        )
        if release is not None and release.state == "promoted":
            return True
        if release is not None and release.is_terminal:
            print(f"  The release of v{number} ended {release.state}: {release.status_reason}")
            return False
        if procs.dead():
            print(f"  A demo process exited early: {procs.dead()} (see var/demo/*.log)")
            return False
        time.sleep(1)
    return False


def run(args: argparse.Namespace) -> int:
    """Everything after Django is set up (demo/__main__.py checks the arguments first)."""
    for folder in (
        "broker/out",
        "broker/processed",
        "broker/control",
        "results",
        "demo",
        "artifacts",
    ):
        (var_dir() / folder).mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(9)
    logins = seed_people(password)
    seed_model()
    seed_on_call()

    url = f"http://{args.host}:{args.port}/"
    print("\n  Model control plane demo")
    print(f"  Portal:   {url}")
    print(f"  API docs: {url}api/docs/")
    for username, pw in logins.items():
        print(f"  Login:    {username} / {pw}")
    if args.no_serve:
        return 0

    env = os.environ.copy()
    env.update(MODELPLANE_DEMO="1", PYTHONUNBUFFERED="1")
    env.setdefault("LOCAL_SCRAPE_INTERVAL_SECONDS", "1")
    # The demo's story shows a failed canary's alert within seconds, not half a minute.
    env.setdefault("ALERTS_EVALUATION_INTERVAL_SECONDS", "5")
    demo_dir = var_dir() / "demo"
    control = demo_dir / "traffic.json"
    if not control.exists():
        control.write_text(json.dumps({"drift": False, "rate": args.rate}))
    py = sys.executable
    procs = Processes(demo_dir)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the demo as cleanly as Ctrl-C does

    signal.signal(signal.SIGTERM, terminate)
    try:
        procs.start(
            "supervisor",
            [
                py,
                "-m",
                "deployments.runtime.supervisor",
                "--state-dir",
                str(var_dir() / "local-runtime"),
            ],
            env,
        )
        procs.start(
            "worker",
            [
                py,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
        )
        procs.start(
            "beat",
            [
                py,
                "-m",
                "celery",
                "-A",
                "controlplane",
                "beat",
                "--schedule",
                str(demo_dir / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ],
            env,
        )
        procs.start(
            "web",
            [
                py,
                "manage.py",
                "runserver",
                "--noreload",
                "--skip-checks",
                f"{args.host}:{args.port}",
            ],
            env,
            quiet=False,
        )
        release_version(1, approve=True)
        print("  Releasing v1 to production (staging, smoke test, then production)...", flush=True)
        if not wait_until_promoted(1, procs, timeout=300):
            print("  v1 did not reach production; see var/demo/*.log", file=sys.stderr)

        deployment = Deployment.objects.select_related("environment", "model").get(
            name=DEPLOYMENT, environment__name="production"
        )
        router = engine.runtime_of(deployment).endpoint(engine.deployment_ref(deployment))
        procs.start(
            "traffic",
            [
                py,
                "-m",
                "serving.traffic",
                "--url",
                router or "",
                "--rate",
                str(args.rate),
                "--control",
                str(control),
            ],
            env,
        )
        release = release_version(2, approve=False)
        print(f"\n  v1 serves production through the router at {router}")
        if release is not None:
            print(f"  v2 waits for approval: {url}releases/{release.pk}/ (log in as approver)")
        print(f"  Demo switches (drift, break v2): {url}demo/")
        broker = "Redis" if settings.REDIS_URL else f"files in {settings.VAR_DIR / 'broker'}"
        print(f"  Logs: {demo_dir}/*.log   Broker: {broker}")
        print("  Stop with Ctrl-C.\n", flush=True)
        while not procs.dead():
            time.sleep(1)
        print(f"  A demo process exited: {procs.dead()} (see {demo_dir}/*.log)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n  Stopping the demo...", flush=True)
        return 0
    finally:
        procs.stop()
