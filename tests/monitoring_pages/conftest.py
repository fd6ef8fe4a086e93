"""Fixtures for the monitoring tiles and pages: the real serving processes and Prometheus of
tests/monitoring (reused, not copied), deployments of the demo model built through the real
services, and a counting proxy that tells how many HTTP requests a page sent to Prometheus."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from deployments import services
from deployments.models import Deployment, Environment, ReleaseState
from registry.models import ModelVersion, RegisteredModel
from tests.factories import (
    SYSTEM,
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    put_in_state,
    release_of,
)
from tests.monitoring.conftest import (  # noqa: F401 (fixtures)
    MODEL,
    demo_packages,
    prometheus_factory,
    prometheus_module_factory,
    serve,
    serve_module,
)

K8S = {"api_url": "http://127.0.0.1:9", "namespace": "models"}
VCPU_HOUR = 0.04
GIB_HOUR = 0.005


def make_environment(name: str, metrics_kind: str, metrics_url: str = "") -> Environment:
    return services.environment_create(
        actor=SYSTEM,
        name=name,
        runtime_kind="kubernetes",
        runtime_config=dict(K8S),
        metrics_kind=metrics_kind,
        metrics_url=metrics_url,
        metrics_scrape_interval_seconds=1.0,  # the test Prometheus scrapes every second
        vcpu_hour_price=VCPU_HOUR,
        gib_hour_price=GIB_HOUR,
    )


def demo_deployment(
    team: Any,
    environment: Environment,
    baseline: dict[str, Any],
    *,
    model_name: str = MODEL,
    canary_of: Any = None,
    **config: Any,
) -> Deployment:
    """The demo model deployed with v1 stable (both versions carry the demo's baseline
    profile); with `canary_of=<user>`, a canary release of v2 that is rolling out."""
    model = RegisteredModel.objects.filter(name=model_name).first() or RegisteredModelFactory(
        name=model_name, team=team
    )
    versions = []
    for number in (1, 2):
        version = ModelVersion.objects.filter(model=model, number=number).first()
        versions.append(
            version or ModelVersionFactory(model=model, number=number, baseline_profile=baseline)
        )
    deployment = deployment_of(model, environment, stable=versions[0], **config)
    if canary_of is not None:
        put_in_state(release_of(deployment, versions[1], canary_of), ReleaseState.PROGRESSING)
    return deployment


class CountingProxy:
    """A loopback HTTP proxy in front of one server that counts the requests it forwards, by
    path: how a test sees the real number of round trips a page makes to Prometheus."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.counts[self.path.split("?", 1)[0]] += 1
                try:
                    answer = httpx.request(
                        self.command,
                        proxy.upstream + self.path,
                        content=body,
                        headers={
                            k: v
                            for k, v in self.headers.items()
                            if k.lower() in ("content-type", "accept")
                        },
                        timeout=10,
                    )
                except httpx.HTTPError:
                    self.send_error(502)
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = _forward
            do_POST = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def start(self) -> CountingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def counting_proxy() -> Iterator[Any]:
    """`counting_proxy(upstream_url)` starts a proxy; every proxy started is stopped."""
    started: list[CountingProxy] = []

    def start(upstream: str) -> CountingProxy:
        proxy = CountingProxy(upstream).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
