"""End to end on one machine: real serving processes under the local runtime's supervisor, the
local router, a real Celery worker over Redis, the local metrics scrape and the real canary
analysis. A canary release goes to promotion, then a rollback; the traffic moving is observed
at the router (X-Served-By-Version), not taken from the database's word."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from deployments import services
from deployments.models import Release
from identity.audit import Actor
from monitoring.tasks import scrape_local_metrics
from registry import services as registry
from serving.demo_model import sample_requests
from tests.factories import RegisteredModelFactory
from tests.support.celery import celery_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)"),
]


class Traffic:
    """Steady traffic to the router; counts who answered, per phase."""

    def __init__(self, url: str, rate: float = 40.0):
        self.url, self.rate = url, rate
        self.phase = "start"
        self.served: dict[str, Counter] = {}
        self.errors = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        rows = sample_requests(2000, seed=7)
        with httpx.Client(timeout=5.0) as client:
            i = 0
            while not self._stop.is_set():
                try:
                    response = client.post(
                        f"{self.url}/predict", json={"instances": [rows[i % len(rows)]]}
                    )
                    counter = self.served.setdefault(self.phase, Counter())
                    counter[response.headers.get("X-Served-By-Version", "?")] += 1
                    if response.status_code >= 500:
                        self.errors[response.status_code] += 1
                except httpx.HTTPError as exc:
                    self.errors[type(exc).__name__] += 1
                i += 1
                self._stop.wait(1 / self.rate)


class Scraper:
    """The demo's beat task, every second, in a thread (the worker runs the releases)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(1.0):
                scrape_local_metrics()
        finally:
            connection.close()


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(release: Release) -> str:
    release.refresh_from_db()
    return release.state


def test_a_canary_release_and_a_rollback_move_real_traffic(
    transactional_db, people, team, demo_packages, local_runtime, tmp_path, settings
):
    settings.ARTIFACT_FILE_ROOTS = [str(Path(demo_packages[1].path).parent)]
    supervised = local_runtime(
        serving_command=[sys.executable, "-m", "serving"], progress_deadline_s=90
    )
    state_dir = str(supervised.state_dir)
    owner = Actor.from_principal(people["owner"])
    system = Actor.system("tests")
    model = RegisteredModelFactory(team=team, name="breast-cancer", risk_tier="low")
    for number in (1, 2):
        package = demo_packages[number]
        manifest = package.manifest
        registry.version_register(
            actor=owner,
            model=model,
            artifact_uri=Path(package.path).as_uri(),
            artifact_digest=package.digest,
            input_schema=manifest["input_schema"],
            output_schema=manifest["output_schema"],
            example_requests=manifest["example_requests"][:2],
            baseline_profile=manifest["baseline_profile"],
        )
    services.environment_create(
        actor=system,
        name="staging",
        runtime_kind="local",
        runtime_config={"state_dir": state_dir, "namespace": "staging"},
    )
    production = services.environment_create(
        actor=system,
        name="production",
        runtime_kind="local",
        runtime_config={"state_dir": state_dir, "namespace": "production"},
        metrics_kind="local",
        metrics_scrape_interval_seconds=1.0,  # the Scraper below runs every second
        staging="staging",
        is_production=True,
    )
    deployment = services.deployment_create(
        actor=owner,
        model=model,
        environment=production,
        name="bc",
        strategy="canary",
        strategy_params={
            "steps": [25, 100],
            "analysis_interval_seconds": 75,
            "min_requests": 50,
            "progress_deadline_seconds": 90,
        },
        replicas=1,
        slo_latency_p95_ms=500,
        slo_error_rate=0.05,
    )
    from deployments import engine

    with celery_worker(tmp_path / "worker.log", concurrency=2):
        first = services.release_create(
            actor=owner, deployment=deployment, version=model.versions.get(number=1)
        )
        wait_for(lambda: state_of(first) in {"promoted", "failed"}, 120, "v1 promoted")
        assert first.state == "promoted", first.status_reason
        router = engine.runtime_of(deployment).endpoint(engine.deployment_ref(deployment))
        assert router and router.startswith("http://127.0.0.1:")

        with Scraper(), Traffic(router) as traffic:
            time.sleep(3)
            traffic.phase = "v1"
            time.sleep(2)
            traffic.phase = "releasing"  # staging, rehearsal, then the first canary step
            release = services.release_create(
                actor=owner, deployment=deployment, version=model.versions.get(number=2)
            )
            wait_for(
                lambda: (
                    (release.refresh_from_db() or True)
                    and (
                        release.traffic.get("weights") == {"1": 75, "2": 25} or release.is_terminal
                    )
                ),
                180,
                "canary 25%",
            )
            assert not release.is_terminal, (release.state, release.status_reason)
            traffic.phase = "canary"
            wait_for(
                lambda: state_of(release) in {"promoted", "paused", "rolled_back", "failed"},
                120,
                "the canary's verdict",
            )
            traffic.phase = "after"
            assert release.state == "promoted", (
                release.status_reason,
                list(release.steps.filter(kind="analysis").values_list("outcome", "reason")),
            )
            time.sleep(3)
            traffic.phase = "promoted"
            time.sleep(3)
            traffic.phase = "rolling_back"  # the switch happens somewhere in here
            rollback = services.deployment_rollback(
                actor=owner, deployment=deployment, reason="e2e"
            )
            wait_for(
                lambda: (rollback.refresh_from_db() or True) and rollback.state != "pending",
                30,
                "the rollback",
            )
            assert rollback.state == "done"
            time.sleep(0.5)
            traffic.phase = "rolled_back"
            time.sleep(3)

    served = traffic.served
    assert set(served["v1"]) == {"1"}
    canary = served["canary"]
    share = canary["2"] / (canary["1"] + canary["2"])
    assert 0.15 < share < 0.35, canary  # 25% of real requests, seen at the router
    assert set(served["promoted"]) == {"2"}, served
    assert set(served["rolled_back"]) == {"1"}, served
    assert not traffic.errors, traffic.errors
    analysis = release.steps.get(kind="analysis")
    assert analysis.outcome == "pass"
    assert analysis.evidence["canary"]["version"] == 2
