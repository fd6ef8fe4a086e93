"""A real Alertmanager for integration tests (Debian's `prometheus-alertmanager`): started on a
free loopback port with clustering off, its storage in a temporary directory, and one webhook
receiver that a test points at a live server with a bearer token read from a file (the way
docs/alertmanager.md tells operators to configure it).

It never talks to anything but 127.0.0.1, and it always stops the server it started. Under
CI=true a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.prometheus import free_port

# ALERTMANAGER_BINARY pins the binary; without it, Debian's path first, then the PATH.
ALERTMANAGER_BINARY = os.environ.get("ALERTMANAGER_BINARY", "")
READY_TIMEOUT_SECONDS = 20.0


def require_alertmanager_binary() -> str:
    """The binary's path; skips the test without it, or fails it under CI=true."""
    candidates = (
        [ALERTMANAGER_BINARY]
        if ALERTMANAGER_BINARY
        else ["/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", "alertmanager"]
    )
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    message = (
        f"Alertmanager binary not found (tried {', '.join(candidates)}; "
        "apt-get install prometheus-alertmanager)"
    )
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class AlertmanagerServer:
    """One running Alertmanager whose only route sends every alert, grouped by `group_by`, to
    `webhook_url` with `Authorization: Bearer <the contents of token_file>`."""

    binary: str
    workdir: Path
    webhook_url: str
    token_file: Path
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: str = "1s"
    group_interval: str = "1s"
    repeat_interval: str = "3s"
    max_alerts: int = 50
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        # JSON is YAML: no quoting surprises in paths or URLs.
        config = {
            "route": {
                "receiver": "modelplane",
                "group_by": list(self.group_by),
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [
                {
                    "name": "modelplane",
                    "webhook_configs": [
                        {
                            "url": self.webhook_url,
                            "send_resolved": True,
                            "max_alerts": self.max_alerts,
                            "http_config": {
                                "authorization": {"credentials_file": str(self.token_file)}
                            },
                        }
                    ],
                }
            ],
        }
        return json.dumps(config, indent=2)

    def start(self) -> AlertmanagerServer:
        config = self.workdir / "alertmanager.yml"
        config.write_text(self.config_text())
        log = (self.workdir / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # no gossip: a lone, loopback-only instance
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
                raise RuntimeError(f"Alertmanager exited early; log:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"Alertmanager not ready in {READY_TIMEOUT_SECONDS}s:\n{self.log_tail()}"
        )

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST /api/v2/alerts, as Prometheus does: [{labels, annotations, startsAt, endsAt?,
        generatorURL?}]; an endsAt in the past resolves the alert."""
        response = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        response.raise_for_status()

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: what Alertmanager holds (with its fingerprints)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return response.json()

    def notifications(self) -> tuple[int, int]:
        """(sent, failed) webhook notifications so far, from Alertmanager's own metrics."""
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        response.raise_for_status()
        sent = failed = 0.0
        for line in response.text.splitlines():
            if 'integration="webhook"' not in line:
                continue
            if line.startswith("alertmanager_notifications_total"):
                sent = float(line.rsplit(" ", 1)[1])
            elif line.startswith("alertmanager_notifications_failed_total"):
                failed += float(line.rsplit(" ", 1)[1])
        return int(sent), int(failed)

    def stop(self) -> None:
        """Stop the server. Safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "alertmanager.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


AlertmanagerFactory = Callable[..., AlertmanagerServer]


@pytest.fixture
def alertmanager_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AlertmanagerFactory]:
    """`alertmanager_factory(webhook_url=..., token=..., repeat_interval="3s", ...)` starts an
    Alertmanager posting to `webhook_url` with that bearer token (written to a 0600 file, never
    into the config); every server started is stopped at teardown."""
    binary = require_alertmanager_binary()
    started: list[AlertmanagerServer] = []

    def start(*, webhook_url: str, token: str, **options: Any) -> AlertmanagerServer:
        workdir = tmp_path_factory.mktemp("alertmanager")
        token_file = workdir / "modelplane.token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        server = AlertmanagerServer(
            binary=binary,
            workdir=workdir,
            webhook_url=webhook_url,
            token_file=token_file,
            **options,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
