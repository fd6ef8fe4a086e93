"""A real Prometheus server for integration tests: started on a free loopback port with a config
written to a temporary directory, scraping the static targets a test gives it every second and,
optionally, the targets listed in a file_sd file the test keeps up to date (`write_file_sd`).

It never talks to anything but 127.0.0.1, and it always stops the server it started. Under
CI=true a missing `prometheus` binary fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

# PROMETHEUS_BINARY pins the binary; without it, Debian's path first, then the PATH.
PROMETHEUS_BINARY = os.environ.get("PROMETHEUS_BINARY", "")
READY_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_prometheus_binary() -> str:
    """The binary's path; skips the test without it, or fails it under CI=true."""
    candidates = [PROMETHEUS_BINARY] if PROMETHEUS_BINARY else ["/usr/bin/prometheus", "prometheus"]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    message = (
        f"Prometheus binary not found (tried {', '.join(candidates)}; apt-get install prometheus)"
    )
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def write_file_sd(path: Path, targets: Sequence[str], labels: dict[str, str] | None = None) -> None:
    """Write a file_sd targets file atomically: Prometheus watches the file and may read it at any
    moment, and a half-written file would drop every target until the next write."""
    groups = [{"targets": sorted(targets), "labels": dict(labels or {})}] if targets else []
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(groups))
    os.replace(partial, path)


@dataclass
class PrometheusServer:
    """One running Prometheus. `targets` are `host:port` strings scraped at `/metrics`; with
    `file_sd`, a second job (`discovered`) scrapes the targets listed in that JSON file, re-read
    whenever it changes (`write_file_sd`). A stopped server starts again on the same port and data
    directory with `start()`."""

    binary: str
    workdir: Path
    targets: Sequence[str]
    scrape_interval_seconds: float = 1.0
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    file_sd: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        interval = f"{round(self.scrape_interval_seconds * 1000)}ms"
        targets = ", ".join(f'"{target}"' for target in self.targets)
        config = self.workdir / "prometheus.yml"
        text = (
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
        )
        if self.targets or self.file_sd is None:
            text += f"  - job_name: serving\n    static_configs:\n      - targets: [{targets}]\n"
        if self.file_sd is not None:
            if not self.file_sd.exists():
                write_file_sd(self.file_sd, [])
            # The file is watched (inotify); the refresh interval is the fallback if an event
            # is missed, short enough for a canary that lives for seconds.
            text += (
                "  - job_name: discovered\n"
                "    file_sd_configs:\n"
                f"      - files: [{json.dumps(str(self.file_sd))}]\n"
                f"        refresh_interval: {interval}\n"
            )
        config.write_text(text)
        log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"Prometheus exited early; log:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Prometheus not ready in {READY_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def scrape_counts(self) -> dict[str, int]:
        """How many scrapes Prometheus has stored per target (`instance`) in the last hour."""
        response = httpx.get(
            f"{self.url}/api/v1/query",
            params={"query": "count_over_time(up[1h])"},
            timeout=2,
        )
        response.raise_for_status()
        return {
            item["metric"]["instance"]: int(float(item["value"][1]))
            for item in response.json()["data"]["result"]
        }

    def wait_for_scrapes(
        self,
        n: int = 1,
        timeout_seconds: float | None = None,
        targets: Sequence[str] | None = None,
    ) -> None:
        """Block until every target (the static ones unless `targets` names others, e.g. the
        file_sd ones) has been scraped `n` more times (successfully or not)."""
        wanted = self.targets if targets is None else targets
        timeout = timeout_seconds or (n * self.scrape_interval_seconds * 3 + 5)
        before = self.scrape_counts()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.scrape_counts()
            if all(now.get(target, 0) >= before.get(target, 0) + n for target in wanted):
                return
            time.sleep(self.scrape_interval_seconds / 4)
        raise TimeoutError(f"targets not scraped {n} more times within {timeout:.1f}s")

    def target_health(self) -> dict[str, str]:
        response = httpx.get(f"{self.url}/api/v1/targets", timeout=2)
        response.raise_for_status()
        return {
            target["labels"]["instance"]: target["health"]
            for target in response.json()["data"]["activeTargets"]
        }

    def stop(self) -> None:
        """Stop the server (also how a test simulates an outage). Safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "prometheus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


PrometheusFactory = Callable[..., PrometheusServer]


def _factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    binary = require_prometheus_binary()
    started: list[PrometheusServer] = []

    def start(
        targets: Sequence[str],
        scrape_interval_seconds: float = 1.0,
        port: int | None = None,
        file_sd: Path | None = None,
    ) -> PrometheusServer:
        server = PrometheusServer(
            binary=binary,
            workdir=tmp_path_factory.mktemp("prometheus"),
            targets=list(targets),
            scrape_interval_seconds=scrape_interval_seconds,
            port=port or free_port(),
            file_sd=file_sd,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    """`prometheus_factory(["127.0.0.1:8001", ...], scrape_interval_seconds=1.0, port=None,
    file_sd=None)` starts a Prometheus scraping those targets (and those listed in the `file_sd`
    file, see `write_file_sd`); every server started is stopped at teardown."""
    yield from _factory(tmp_path_factory)


@pytest.fixture(scope="module")
def prometheus_module_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusFactory]:
    """The same, for servers shared by the tests of one module (stopped after the module)."""
    yield from _factory(tmp_path_factory)
