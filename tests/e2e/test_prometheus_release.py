"""End to end with a real Prometheus as the production metrics source: real serving processes
under the local runtime's supervisor, found by Prometheus through a file_sd targets file kept in
step with the runtime, steady traffic through the local router, a real Celery worker over Redis
and the real canary analysis. A healthy canary promotes; injected errors and injected latency
roll back on their own; Prometheus going down mid-analysis pauses the release (never a promotion,
never a rollback) until a person resumes it.

One stack serves the whole module (runtime, Prometheus, worker, traffic, v1 promoted once); each
test releases a fresh version from a v1-stable deployment. Verdicts are read from the evidence
stored on the release steps, traffic from the router's X-Served-By-Version header: never from
the database's word alone. It must never send traffic anywhere but 127.0.0.1.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from deployments import engine, services
from deployments.models import ACTIVE_STATES, Deployment, Release, Rollback
from deployments.runtime.base import DeploymentRef
from deployments.runtime.local import LocalRuntime
from identity.audit import Actor
from registry import services as registry
from registry.models import ModelVersion, RegisteredModel
from serving.demo_model import sample_requests
from tests.factories import MembershipFactory, RegisteredModelFactory, TeamFactory, UserFactory
from tests.support.celery import celery_worker
from tests.support.prometheus import PrometheusServer, write_file_sd

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not settings.REDIS_AVAILABLE, reason="no Redis here (CI fails instead)"),
]

MODEL = "breast-cancer"
WINDOW_SECONDS = 75  # the shortest a 1 s scrape allows: 25 samples of three scrapes each
CANARY_WEIGHT = 25
SLO_P95_MS = 150
SLO_ERROR_RATE = 0.05
MIN_REQUESTS = 50
TRAFFIC_THREADS, RATE_PER_THREAD = 3, 8.0  # ~24 requests/s: ~240 canary requests per window
SETTLED = {"promoted", "paused", "rolled_back", "failed", "aborted"}

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


@dataclass(frozen=True)
class Answer:
    sent: float  # time.time(), comparable with Prometheus timestamps in the evidence
    seconds: float
    version: str  # X-Served-By-Version, "?" without one, "" when no answer came
    status: int  # 0 when no answer came


class RouterTraffic:
    """Steady one-row traffic to the router from a few paced threads (a slow canary must not
    slow the traffic down); records who answered, how, when and how fast."""

    def __init__(self, url: str, threads: int = TRAFFIC_THREADS, rate: float = RATE_PER_THREAD):
        self.url, self.rate = url, rate
        self.answers: list[Answer] = []  # list.append is atomic: no lock needed
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed,), daemon=True) for seed in range(threads)
        ]

    def __enter__(self) -> RouterTraffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, seed: int) -> None:
        rows = sample_requests(500, seed=seed)
        interval = 1 / self.rate
        next_at = time.monotonic()
        with httpx.Client(timeout=5.0) as client:
            for i in range(10**7):
                if self._stop.is_set():
                    return
                sent, started = time.time(), time.perf_counter()
                try:
                    response = client.post(
                        f"{self.url}/predict", json={"instances": [rows[i % len(rows)]]}
                    )
                    version = response.headers.get("X-Served-By-Version", "?")
                    status = response.status_code
                except httpx.HTTPError:
                    version, status = "", 0
                self.answers.append(Answer(sent, time.perf_counter() - started, version, status))
                next_at = max(next_at + interval, time.monotonic())
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def between(self, start: float, end: float | None = None) -> list[Answer]:
        end = time.time() if end is None else end
        return [a for a in list(self.answers) if start <= a.sent < end]

    def served(self, start: float, end: float | None = None) -> Counter:
        """{(version, status): answers} sent in [start, end)."""
        return Counter((a.version, a.status) for a in self.between(start, end))

    def observe(self, seconds: float) -> Counter:
        start = time.time()
        time.sleep(seconds)
        return self.served(start)


class ScrapeTargets:
    """Keeps Prometheus's file_sd file equal to the deployment's serving processes, as a service
    discovery would: every version with a live endpoint is a target, the router is not (it does
    not speak the serving metrics contract). Polls the runtime from a background thread."""

    def __init__(self, runtime: LocalRuntime, ref: DeploymentRef, path: Path):
        self.runtime, self.ref, self.path = runtime, ref, path
        self.current: tuple[str, ...] = ()
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ScrapeTargets:
        self.sync()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sync(self) -> None:
        urls = [self.runtime.endpoint(self.ref, v) for v in self.runtime.list_versions(self.ref)]
        targets = tuple(sorted(url.removeprefix("http://") for url in urls if url))
        if targets != self.current:
            write_file_sd(self.path, targets, {"deployment": self.ref.name})
            now = time.time()
            for target in targets:
                self.first_seen.setdefault(target, now)
            self.current = targets

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.sync()
            except (OSError, ValueError):
                continue  # a state file caught mid-replace: the next look reads it whole


def register(owner: Actor, model: RegisteredModel, package: Any) -> ModelVersion:
    """A new version of the model (the next number) from one of the demo packages."""
    manifest = package.manifest
    return registry.version_register(
        actor=owner,
        model=model,
        artifact_uri=Path(package.path).as_uri(),
        artifact_digest=package.digest,
        input_schema=manifest["input_schema"],
        output_schema=manifest["output_schema"],
        example_requests=manifest["example_requests"][:2],
        baseline_profile=manifest["baseline_profile"],
    )


def wait_until_settled(release: Release, timeout: float = WINDOW_SECONDS + 60) -> str:
    """Block until the release is promoted, paused or finished otherwise; returns its state."""

    def settled() -> bool:
        release.refresh_from_db()
        return release.state in SETTLED

    wait_for(settled, timeout, f"release {release.pk} to settle")
    return release.state


@dataclass
class Stack:
    """The module's shared world: one production deployment on the local runtime, measured by
    one Prometheus, released by one worker, under steady traffic through its router."""

    owner: Actor
    model: RegisteredModel
    deployment: Deployment
    packages: dict[int, Any]
    runtime: LocalRuntime
    ref: DeploymentRef
    prometheus: PrometheusServer
    targets: ScrapeTargets
    traffic: RouterTraffic
    v1: ModelVersion

    def register(self, package: int) -> ModelVersion:
        return register(self.owner, self.model, self.packages[package])

    def release(self, version: ModelVersion) -> Release:
        return services.release_create(
            actor=self.owner, deployment=self.deployment, version=version
        )

    def wait_for_canary_traffic(self, release: Release) -> float:
        """Block until the router serves the canary step's split; returns when (time.time())."""
        number = str(release.version.number)
        wanted = {str(self.v1.number): 100 - CANARY_WEIGHT, number: CANARY_WEIGHT}

        def at_canary_step() -> bool:
            release.refresh_from_db()
            return release.traffic.get("weights") == wanted or release.is_terminal

        wait_for(at_canary_step, 120, f"v{number} at {CANARY_WEIGHT}%")
        assert not release.is_terminal, (release.state, release.status_reason)
        return time.time()

    def set_faults(self, number: int, *, error_rate: float = 0.0, latency_ms: int = 0) -> None:
        url = self.runtime.endpoint(self.ref, number)
        assert url, f"v{number} has no endpoint"
        response = httpx.post(
            f"{url}/-/faults", json={"error_rate": error_rate, "latency_ms": latency_ms}, timeout=5
        )
        response.raise_for_status()

    def routed_weights(self) -> dict[int, int]:
        routes = self.runtime.routed_traffic(self.ref) or {}
        return {int(v): int(w) for v, w in (routes.get("weights") or {}).items() if int(w) > 0}

    def ensure_v1_stable(self) -> None:
        """Back to v1 serving everything, by the rollback button when a test left it elsewhere."""
        deployment = Deployment.objects.get(pk=self.deployment.pk)
        active = deployment.releases.filter(state__in=ACTIVE_STATES).first()
        if active is not None or deployment.stable_version_id != self.v1.pk:
            rollback = services.deployment_rollback(
                actor=self.owner, deployment=deployment, reason="e2e: back to v1"
            )

            def finished() -> bool:
                rollback.refresh_from_db()
                return rollback.state != "pending"

            wait_for(finished, 60, "the rollback to v1")
            assert rollback.state == "done", rollback.evidence
            if active is not None:
                wait_until_settled(active, 30)
        wait_for(lambda: self.routed_weights() == {self.v1.number: 100}, 30, "v1 at 100%")
        self.deployment.refresh_from_db()


@pytest.fixture(scope="module")
def stack(
    module_committed_db: None,
    demo_packages: dict[int, Any],
    module_local_runtime: Callable[..., Any],
    prometheus_module_factory: Callable[..., PrometheusServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prometheus-release")
    with override_settings(ARTIFACT_FILE_ROOTS=[str(Path(demo_packages[1].path).parent)]):
        supervised = module_local_runtime(
            serving_command=[sys.executable, "-m", "serving"], progress_deadline_s=90
        )
        file_sd = workdir / "targets.json"
        prometheus = prometheus_module_factory([], scrape_interval_seconds=1.0, file_sd=file_sd)
        team = TeamFactory(slug="fraud")
        user = UserFactory(username="owner")
        MembershipFactory(team=team, user=user, role="owner")
        owner = Actor.from_principal(user)
        model = RegisteredModelFactory(team=team, name=MODEL, risk_tier="low")
        production = services.environment_create(
            actor=Actor.system("tests"),
            name="production",
            runtime_kind="local",
            runtime_config={"state_dir": str(supervised.state_dir), "namespace": "production"},
            metrics_kind="prometheus",
            metrics_url=prometheus.url,
            metrics_scrape_interval_seconds=1.0,
            is_production=True,
        )
        deployment = services.deployment_create(
            actor=owner,
            model=model,
            environment=production,
            name="bc",
            strategy="canary",
            strategy_params={
                "steps": [CANARY_WEIGHT, 100],
                "analysis_interval_seconds": WINDOW_SECONDS,
                "min_requests": MIN_REQUESTS,
                "progress_deadline_seconds": 90,
            },
            replicas=1,
            slo_latency_p95_ms=SLO_P95_MS,
            slo_error_rate=SLO_ERROR_RATE,
            env={"SERVING_ALLOW_FAULTS": "1"},  # the fault switch, for this test only
        )
        ref = engine.deployment_ref(deployment)
        targets = ScrapeTargets(supervised.runtime, ref, file_sd)
        with targets, celery_worker(workdir / "worker.log", concurrency=2):
            v1 = register(owner, model, demo_packages[1])
            first = services.release_create(actor=owner, deployment=deployment, version=v1)
            assert wait_until_settled(first, 120) == "promoted", first.status_reason
            router = supervised.runtime.endpoint(ref)
            assert router and router.startswith("http://127.0.0.1:")
            with RouterTraffic(router) as traffic:
                yield Stack(
                    owner=owner,
                    model=model,
                    deployment=deployment,
                    packages=demo_packages,
                    runtime=supervised.runtime,
                    ref=ref,
                    prometheus=prometheus,
                    targets=targets,
                    traffic=traffic,
                    v1=v1,
                )


@pytest.fixture
def v1_stable(stack: Stack) -> Stack:
    stack.ensure_v1_stable()
    assert set(stack.traffic.observe(1.0)) == {("1", 200)}
    return stack


def analysis_steps(release: Release) -> list[Any]:
    return list(release.steps.filter(kind="analysis").order_by("id"))


def router_agrees(stack: Stack, evidence: dict[str, Any], version: int) -> tuple[int, float]:
    """(answers the router saw from `version` in the analysis window, Prometheus's count)."""
    end = float(evidence["end"])
    seen = sum(
        1 for a in stack.traffic.between(end - WINDOW_SECONDS, end) if a.version == str(version)
    )
    role = "canary" if evidence["canary"]["version"] == version else "stable"
    return seen, float(evidence[f"{role}_stats"]["requests"])


def test_a_healthy_canary_passes_analysis_on_prometheus_and_promotes(v1_stable: Stack) -> None:
    stack = v1_stable
    version = stack.register(2)
    release = stack.release(version)
    canary_from = stack.wait_for_canary_traffic(release)

    assert wait_until_settled(release) == "promoted", (
        release.status_reason,
        [(s.outcome, s.reason) for s in analysis_steps(release)],
    )
    (analysis,) = analysis_steps(release)
    evidence = analysis.evidence
    assert analysis.outcome == "pass"
    assert evidence["verdict"] == "pass"
    assert evidence["source"] == "PrometheusSource"
    assert (evidence["stable"]["version"], evidence["canary"]["version"]) == (1, version.number)
    assert evidence["weight"] == CANARY_WEIGHT
    canary, stable = evidence["canary_stats"], evidence["stable_stats"]
    assert f'version="{version.number}"' in canary["queries"][0]  # asked of Prometheus in PromQL
    assert canary["requests"] >= MIN_REQUESTS and stable["requests"] >= 2 * canary["requests"]
    assert canary["errors"] == 0 and canary["error_rate"] == 0
    assert 0 < canary["latency_p95"] < SLO_P95_MS / 1000
    assert evidence["slo_checks"]["error_rate"]["verdict"] == "pass"
    assert evidence["slo_checks"]["latency_p95"]["verdict"] == "pass"
    # Both sides compared on 20 intervals; a shift may be significant yet below what matters.
    immaterial = " ".join(evidence.get("immaterial", []))
    for name in ("error_rate_shift", "latency_p95_shift", "latency_p95_spread"):
        comparison = evidence["comparisons"][name]
        assert comparison["experiment_n"] >= 20 and comparison["control_n"] >= 20, comparison
        assert comparison["verdict"] == "pass" or name in immaterial, comparison
    # Prometheus counted what the router saw the canary answer (increase() extrapolates a bit).
    seen, counted = router_agrees(stack, evidence, version.number)
    assert 0.75 * seen <= counted <= 1.25 * seen, (seen, counted)

    during = stack.traffic.served(canary_from + 1, float(evidence["end"]))
    on_canary = during[(str(version.number), 200)] / sum(during.values())
    assert 0.15 < on_canary < 0.35, during  # 25% of real requests, seen at the router
    assert set(during) == {("1", 200), (str(version.number), 200)}, during
    after = stack.traffic.observe(1.5)
    assert set(after) == {(str(version.number), 200)}, after  # promoted: all on the canary


def test_a_canary_that_answers_errors_fails_analysis_and_rolls_back(v1_stable: Stack) -> None:
    stack = v1_stable
    version = stack.register(2)
    release = stack.release(version)
    canary_from = stack.wait_for_canary_traffic(release)
    stack.set_faults(version.number, error_rate=0.3)

    assert wait_until_settled(release) == "rolled_back", release.status_reason
    rolled_back_at = time.time()
    (analysis,) = analysis_steps(release)
    evidence = analysis.evidence
    assert analysis.outcome == "fail" and evidence["verdict"] == "fail"
    assert any("canary error_rate" in reason for reason in evidence["reasons"]), evidence["reasons"]
    assert evidence["slo_checks"]["error_rate"]["verdict"] == "fail"
    canary, stable = evidence["canary_stats"], evidence["stable_stats"]
    assert 0.15 < canary["error_rate"] < 0.45, canary["error_rate"]  # 30% injected
    assert canary["requests"] >= MIN_REQUESTS
    assert stable["errors"] == 0 and stable["error_rate"] == 0

    rollback = Rollback.objects.get(release=release)
    assert rollback.automatic and rollback.state == "done"
    assert (rollback.from_version.number, rollback.to_version.number) == (version.number, 1)
    assert rollback.evidence["trigger"]["verdict"] == "fail"
    assert release.steps.filter(kind="rollback", outcome="fail").exists()
    assert release.status_reason == "traffic back on v1"
    stack.deployment.refresh_from_db()
    assert stack.deployment.stable_version_id == stack.v1.pk

    during = stack.traffic.served(canary_from + 1, float(evidence["end"]))
    assert during[(str(version.number), 500)] > 0, during  # the errors reached real callers
    assert during[("1", 500)] == 0, during
    time.sleep(1.0)
    after = stack.traffic.served(rolled_back_at + 0.5)
    assert set(after) == {("1", 200)}, after  # observed at the router: all on v1, healthy


def test_a_canary_slower_than_the_slo_fails_analysis_and_rolls_back(v1_stable: Stack) -> None:
    stack = v1_stable
    version = stack.register(2)
    release = stack.release(version)
    canary_from = stack.wait_for_canary_traffic(release)
    stack.set_faults(version.number, latency_ms=200)

    assert wait_until_settled(release) == "rolled_back", release.status_reason
    rolled_back_at = time.time()
    (analysis,) = analysis_steps(release)
    evidence = analysis.evidence
    assert analysis.outcome == "fail" and evidence["verdict"] == "fail"
    assert any("canary latency_p95" in r for r in evidence["reasons"]), evidence["reasons"]
    assert evidence["slo_checks"]["latency_p95"]["verdict"] == "fail"
    assert evidence["slo_checks"]["error_rate"]["verdict"] == "pass"
    canary, stable = evidence["canary_stats"], evidence["stable_stats"]
    assert canary["latency_p95"] > SLO_P95_MS / 1000, canary["latency_p95"]
    assert stable["latency_p95"] < SLO_P95_MS / 1000, stable["latency_p95"]
    assert canary["errors"] == 0

    rollback = Rollback.objects.get(release=release)
    assert rollback.automatic and rollback.state == "done"
    assert rollback.to_version_id == stack.v1.pk
    slow = [
        a.seconds
        for a in stack.traffic.between(canary_from + 1, float(evidence["end"]))
        if a.version == str(version.number)
    ]
    assert slow and min(slow) >= 0.2, slow[:5]  # every canary answer carried the +200 ms
    time.sleep(1.0)
    after = stack.traffic.between(rolled_back_at + 0.5)
    assert {(a.version, a.status) for a in after} == {("1", 200)}
    assert max(a.seconds for a in after) < 0.2


def test_prometheus_down_mid_analysis_pauses_the_release_until_it_is_resumed(
    v1_stable: Stack,
) -> None:
    stack = v1_stable
    version = stack.register(2)
    release = stack.release(version)
    stack.wait_for_canary_traffic(release)
    time.sleep(WINDOW_SECONDS / 3)
    stack.prometheus.stop()  # an outage in the middle of the analysis window

    assert wait_until_settled(release) == "paused", release.status_reason
    (analysis,) = analysis_steps(release)
    evidence = analysis.evidence
    assert analysis.outcome == "inconclusive" and evidence["verdict"] == "inconclusive"
    assert evidence["reasons"] and all(
        "metrics unavailable" in reason for reason in evidence["reasons"]
    ), evidence["reasons"]
    assert evidence["unavailable"] and "stable_stats" not in evidence  # no number made up
    pause = release.steps.get(kind="pause")
    assert pause.outcome == "inconclusive" and pause.to_state == "paused"
    assert release.steps.filter(kind="notify").exists()  # the owners were told once
    # Never a promotion, never a rollback: the split stays where it was, both versions serve.
    held = stack.traffic.observe(3.0)
    assert set(held) == {("1", 200), (str(version.number), 200)}, held
    release.refresh_from_db()
    assert release.state == "paused"
    assert not Rollback.objects.filter(deployment=stack.deployment, release=release).exists()
    stack.deployment.refresh_from_db()
    assert stack.deployment.stable_version_id == stack.v1.pk
    assert stack.routed_weights() == {1: 100 - CANARY_WEIGHT, version.number: CANARY_WEIGHT}

    stack.prometheus.start()  # same port, same data directory
    stack.prometheus.wait_for_scrapes(2, targets=stack.targets.current)
    services.release_resume(actor=stack.owner, release=release, reason="Prometheus is back")
    resumed_at = time.time()

    assert wait_until_settled(release) == "promoted", (
        release.status_reason,
        [(s.outcome, s.reason) for s in analysis_steps(release)],
    )
    first, second = analysis_steps(release)
    assert first.pk == analysis.pk and second.outcome == "pass"
    assert second.evidence["canary_stats"]["requests"] >= MIN_REQUESTS
    # The window after the resume holds only data from after it (the outage is not evidence).
    assert float(second.evidence["end"]) - WINDOW_SECONDS >= resumed_at - 1.0
    assert release.steps.filter(kind="resume").exists()
    assert not Rollback.objects.filter(release=release).exists()
    time.sleep(1.0)
    assert set(stack.traffic.observe(1.5)) == {(str(version.number), 200)}
