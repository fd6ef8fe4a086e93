"""Fixtures for the inference service tests: demo packages built once per session, in-process
apps (TestClient) and real `python -m serving` processes on free loopback ports."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.config import ServingSettings
from serving.demo_model import build_demo_versions
from serving.logs import json_logger
from serving.packaging import LoadedModel, PackageInfo, load_package

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # imports of sklearn/skops are slow on a shared 2-core machine


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[PackageInfo]]:
    out = tmp_path_factory.mktemp("packages")
    return {
        "sklearn-skops": build_demo_versions(out / "skops"),
        "onnx": build_demo_versions(out / "onnx", format="onnx"),
    }


@pytest.fixture(scope="session")
def skops_v1(packages: dict[str, list[PackageInfo]]) -> PackageInfo:
    return packages["sklearn-skops"][0]


@pytest.fixture(scope="session")
def onnx_v1(packages: dict[str, list[PackageInfo]]) -> PackageInfo:
    return packages["onnx"][0]


@pytest.fixture(scope="session")
def loaded(packages: dict[str, list[PackageInfo]]) -> dict[str, LoadedModel]:
    return {fmt: load_package(infos[0].path, infos[0].digest) for fmt, infos in packages.items()}


def valid_instance(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "radius_mean": 14.1,
        "texture_mean": 19.3,
        "smoothness_mean": 0.096,
        "compactness_mean": 0.104,
        "concavity_mean": 0.089,
        "symmetry_mean": 0.181,
        "area_worst": 880.6,
        "size_band": "medium",
    }
    row.update(overrides)
    return row


def wait_until_ready(client: TestClient | httpx.Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service did not become ready")


@dataclass
class AppHarness:
    client: TestClient
    log: io.StringIO
    settings: ServingSettings

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.client.get("/metrics").text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none match)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
def make_app(loaded: dict[str, LoadedModel]) -> Iterator[Callable[..., AppHarness]]:
    """Build an in-process app around an already loaded package; settings override by kwargs."""
    clients: list[TestClient] = []

    def build(
        fmt: str = "sklearn-skops",
        load_model: Callable[[], LoadedModel] | None = None,
        wait: bool = True,
        **overrides: Any,
    ) -> AppHarness:
        settings = ServingSettings(
            artifact_uri="unused",
            artifact_digest="sha256:" + "0" * 64,
            model_version="v1",
            track="canary",
            **overrides,
        )
        log = io.StringIO()
        model = loaded[fmt]
        app = create_app(
            settings, load_model=load_model or (lambda: model), logger=json_logger(log)
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        if wait:
            wait_until_ready(client)
        return AppHarness(client=client, log=log, settings=settings)

    yield build
    for client in clients:
        client.__exit__(None, None, None)


# ---------------------------------------------------------------- real processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceProcess:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        client = httpx.Client(base_url=self.base_url, timeout=10.0)
        self.clients.append(client)
        return client

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"service exited early:\n{self.output()}")
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"service not ready within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wait_every_worker_ready(svc: ServiceProcess, streak: int = 20, timeout: float = 120) -> None:
    """Readiness is per worker: `streak` fresh connections in a row (spread over the workers by
    the kernel) must answer ready before a test may count on every request being served."""
    svc.wait_ready()
    deadline = time.monotonic() + timeout
    ready = 0
    while ready < streak:
        assert time.monotonic() < deadline, "not every worker became ready"
        with httpx.Client(base_url=svc.base_url, timeout=10.0) as client:
            ok = client.get("/v2/health/ready").status_code == 200
        ready = ready + 1 if ok else 0
        if not ok:
            time.sleep(0.1)


def service_env(info: PackageInfo, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "SERVING_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "MODEL_ARTIFACT_URI": info.path.as_uri(),
            "MODEL_ARTIFACT_DIGEST": info.digest,
            "MODEL_NAME": "breast-cancer",
            "MODEL_VERSION": "v1",
            "MODEL_TRACK": "stable",
        }
    )
    env.update(extra)
    return env


def start_service(
    workdir: Path,
    env: dict[str, str],
    args: list[str] | None = None,
    command: Callable[[int], list[str]] | None = None,
) -> ServiceProcess:
    """Start `python -m serving` (or `command(port)`) on a free port; the caller must `stop()`."""
    port = free_port()
    if command is not None:
        base = command(port)
    else:
        base = [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port)]
    workdir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [*base, *(args or [])], env=env, cwd=REPO_ROOT, stdout=out, stderr=err
        )
    return ServiceProcess(proc=proc, port=port, stdout=stdout, stderr=stderr)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def factory(env: dict[str, str], args: list[str] | None = None) -> ServiceProcess:
        svc = start_service(tmp_path / f"svc{len(started)}", env, args)
        started.append(svc)
        return svc

    yield factory
    for svc in started:
        svc.stop()
