"""Fixtures for the metrics tests: real inference processes (`python -m serving`, the demo model
packaged once per session) and a real Prometheus scraping them (tests.support.prometheus)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitoring.sources.base import VersionKey
from serving.demo_model import build_demo_versions, sample_requests
from tests.support.prometheus import (  # noqa: F401 (fixtures)
    PrometheusServer,
    free_port,
    prometheus_factory,
    prometheus_module_factory,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "breast-cancer"
STARTUP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class DemoPackage:
    path: Path
    digest: str
    manifest: dict[str, Any]


@dataclass(eq=False)
class ServedVersion:
    """One `python -m serving` process serving one model version on 127.0.0.1."""

    key: VersionKey
    port: int
    process: subprocess.Popen
    package: DemoPackage
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.base_url}/metrics"

    def set_faults(self, error_rate: float = 0.0, latency_ms: int = 0) -> None:
        response = self.client.post(
            f"{self.base_url}/-/faults", json={"error_rate": error_rate, "latency_ms": latency_ms}
        )
        response.raise_for_status()

    def predict(self, rows: list[dict]) -> httpx.Response:
        return self.client.post(f"{self.base_url}/predict", json={"instances": rows})

    def send(self, n: int, seed: int = 0) -> Counter:
        """Send n one-row requests one after another; returns how many got each status code."""
        return Counter(self.predict([row]).status_code for row in sample_requests(n, seed=seed))

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture(scope="session")
def demo_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[int, DemoPackage]:
    """The demo model's v1 and v2 packages, trained once per session."""
    out = tmp_path_factory.mktemp("packages")
    infos = build_demo_versions(out)
    return {
        version: DemoPackage(Path(info.path), info.digest, info.manifest)
        for version, info in enumerate(infos, start=1)
    }


def _launch(version: int, package: DemoPackage, port: int | None = None) -> ServedVersion:
    port = port or free_port()
    env = {
        **os.environ,
        "MODEL_NAME": MODEL,
        "MODEL_VERSION": str(version),
        "MODEL_ARTIFACT_URI": str(package.path),
        "MODEL_ARTIFACT_DIGEST": package.digest,
        "SERVING_ALLOW_FAULTS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return ServedVersion(VersionKey(MODEL, version), port, process, package)


def _wait_ready(versions: Sequence[ServedVersion]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    pending = list(versions)
    while pending and time.monotonic() < deadline:
        for served in list(pending):
            if served.process.poll() is not None:
                raise RuntimeError(f"serving {served.key} exited with {served.process.returncode}")
            try:
                ready = served.client.get(f"{served.base_url}/v2/health/ready", timeout=1)
            except httpx.HTTPError:
                continue
            if ready.status_code == 200:
                pending.remove(served)
        time.sleep(0.1)
    if pending:
        raise RuntimeError(f"serving not ready in {STARTUP_TIMEOUT_SECONDS}s: {pending}")


ServeFactory = Callable[..., list[ServedVersion]]


def _serve_factory(packages: dict[int, DemoPackage]) -> Iterator[ServeFactory]:
    started: list[ServedVersion] = []

    def serve(*versions: int, package: int = 1) -> list[ServedVersion]:
        """Start one process per version (in parallel), all serving the same package."""
        launched = [_launch(version, packages[package]) for version in versions]
        started.extend(launched)
        _wait_ready(launched)
        return launched

    try:
        yield serve
    finally:
        for served in started:
            served.stop()


@pytest.fixture
def serve(demo_packages: dict[int, DemoPackage]) -> Iterator[ServeFactory]:
    """`stable, canary = serve(1, 2)` starts processes labelled with those versions."""
    yield from _serve_factory(demo_packages)


@pytest.fixture(scope="module")
def serve_module(demo_packages: dict[int, DemoPackage]) -> Iterator[ServeFactory]:
    yield from _serve_factory(demo_packages)


def restart(served: ServedVersion) -> ServedVersion:
    """Stop a process and start it again on the same port: its counters begin again at zero.
    The same object keeps the new process, so the fixture that started it also stops it."""
    served.stop()
    again = _launch(served.key.version, served.package, port=served.port)
    served.process, served.client = again.process, again.client
    _wait_ready([served])
    return served


def warm_up(versions: Sequence[ServedVersion], prometheus: PrometheusServer) -> None:
    """Create every request series (a success and a failure) and let Prometheus scrape them
    before a test's window opens: Prometheus cannot count the first value of a series that is
    born inside a window (the service creates a status code's series on its first use)."""
    for served in versions:
        served.set_faults(error_rate=1.0)
        served.send(1)
        served.set_faults(error_rate=0.0)
        served.send(1)
    prometheus.wait_for_scrapes(2)


def drive_traffic(plan: dict[ServedVersion, float], seconds: float) -> dict[ServedVersion, Counter]:
    """Send steady one-row traffic to every version at its requests-per-second for `seconds`,
    one thread per version (a slow version must not slow the others down)."""
    results: dict[ServedVersion, Counter] = {}
    deadline = time.monotonic() + seconds
    rows = sample_requests(64, seed=7)

    def run(served: ServedVersion, rate: float) -> None:
        codes: Counter = Counter()
        interval = 1 / rate
        with httpx.Client(timeout=30) as client:
            next_at = time.monotonic()
            sent = 0
            while (now := time.monotonic()) < deadline:
                if now < next_at:
                    time.sleep(min(next_at - now, deadline - now))
                    continue
                response = client.post(
                    f"{served.base_url}/predict", json={"instances": [rows[sent % len(rows)]]}
                )
                codes[response.status_code] += 1
                sent += 1
                next_at += interval
        results[served] = codes

    threads = [threading.Thread(target=run, args=item) for item in plan.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return results
