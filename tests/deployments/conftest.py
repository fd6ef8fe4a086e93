"""A small world for the release engine: the fake Kubernetes API (deployments become ready as
soon as written), a stub model server behind it, staging and production environments, a model
with two versions, and a canary deployment in production."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core import clock
from deployments import engine, services
from deployments.models import Deployment, Environment, Release
from deployments.runtime import factory
from identity.audit import Actor
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.k8s.fake_apiserver import FakeApiServer
from tests.support.analyzers import VERDICT_FILE_ENV
from tests.support.stub_model import kubernetes_runtime_config, stub_model_server

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "integer"}},
    "required": ["label"],
}
EXAMPLES = [{"instances": [{"age": 41, "plan": "pro"}, {"age": 23, "plan": "basic"}]}]


@dataclass
class World:
    fake: FakeApiServer
    stub_url: str
    staging: Environment
    production: Environment
    deployment: Deployment
    versions: dict[int, Any]
    verdict_file: Path
    owner: Actor
    maintainer: Actor

    def route(self, env: str = "ml-prod") -> dict | None:
        return self.fake.get("httproutes", env, self.deployment.name)

    def weights(self, env: str = "ml-prod") -> dict[int, int]:
        route = self.route(env)
        if route is None:
            return {}
        rule = route["spec"]["rules"][0]
        return {int(b["name"].rsplit("-v", 1)[1]): b.get("weight", 1) for b in rule["backendRefs"]}

    def mirror(self, env: str = "ml-prod") -> dict | None:
        route = self.route(env)
        for f in (route or {}).get("spec", {}).get("rules", [{}])[0].get("filters", []):
            if f["type"] == "RequestMirror":
                return f["requestMirror"]
        return None

    def replicas(self, version: int, env: str = "ml-prod") -> int | None:
        obj = self.fake.get("deployments", env, f"{self.deployment.name}-v{version}")
        return None if obj is None else obj["spec"]["replicas"]

    def verdict(self, value: str) -> None:
        self.verdict_file.write_text(value)

    def release(self, version: int, actor: Actor | None = None) -> Release:
        return services.release_create(
            actor=actor or self.maintainer,
            deployment=self.deployment,
            version=self.versions[version],
        )


def drive(
    release: Release, *, until: set[str] | None = None, max_steps: int = 200, tick: float = 5.0
) -> Release:
    """Run the reconcile loop in-process, moving the clock instead of sleeping, until the
    release reaches one of `until` (default: a terminal state)."""
    from deployments.models import TERMINAL_STATES

    targets = until or set(TERMINAL_STATES)
    for _ in range(max_steps):
        release.refresh_from_db()
        if release.state in targets:
            return release
        for rollback in release.rollbacks.filter(state="pending"):
            engine.rollback_reconcile(rollback.pk)
        delay = engine.reconcile(release.pk, force=True)
        if delay is None and release.state not in targets:
            release.refresh_from_db()
            if release.state in {"paused", "awaiting_approval"}:
                return release
        clock.advance(max(delay or 0.0, tick) if delay else tick)
    raise AssertionError(f"release stuck in {release.state} at step {release.step_index}")


@pytest.fixture
def fake_k8s() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    server.auto_ready = True
    factory.clear_cache()
    try:
        yield server
    finally:
        factory.clear_cache()
        server.stop()


@pytest.fixture
def world(people, team, fake_k8s, tmp_path, settings, monkeypatch) -> Iterator[World]:  # type: ignore[no-untyped-def]
    verdict_file = tmp_path / "verdict"
    verdict_file.write_text("pass")
    monkeypatch.setenv(VERDICT_FILE_ENV, str(verdict_file))
    settings.MODELPLANE_ANALYZER = "tests.support.analyzers.ScriptedAnalyzer"
    clock.reset()
    with stub_model_server() as stub_url:

        def runtime_config(namespace: str) -> dict[str, Any]:
            return kubernetes_runtime_config(fake_k8s.url, stub_url, namespace)

        system = Actor.system("tests")
        staging = services.environment_create(
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
            # A Prometheus that does not exist: the scripted analyzer decides instead, and
            # rollback must work without it. Scraping "every 0.5 s" lets tests use 20 s windows.
            metrics_kind="prometheus",
            metrics_url="http://127.0.0.1:9",
            metrics_scrape_interval_seconds=0.5,
        )
        model = RegisteredModelFactory(team=team, name="fraud-detector", risk_tier="low")
        versions = {
            n: ModelVersionFactory(
                model=model, number=n, output_schema=OUTPUT_SCHEMA, example_requests=EXAMPLES
            )
            for n in (1, 2, 3)
        }
        maintainer = Actor.from_principal(people["maintainer"])
        deployment = services.deployment_create(
            actor=maintainer,
            model=model,
            environment=production,
            name="fraud",
            strategy="canary",
            strategy_params={
                "steps": [5, 25, 50, 100],
                "analysis_interval_seconds": 60,
                "min_requests": 10,
                "progress_deadline_seconds": 120,
            },
            replicas=3,
        )
        yield World(
            fake_k8s,
            stub_url,
            staging,
            production,
            deployment,
            versions,
            verdict_file,
            Actor.from_principal(people["owner"]),
            maintainer,
        )
    clock.reset()


@pytest.fixture
def promoted_v1(world: World) -> World:
    """v1 serving all production traffic (a first release), so v2 can be canaried."""
    release = world.release(1)
    release = drive(release)
    assert release.state == "promoted", release.status_reason
    world.deployment.refresh_from_db()
    return world
