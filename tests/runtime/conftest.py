"""Fixtures for real processes on loopback: a supervisor in a temporary state directory with a
LocalRuntime pointed at it (`local_runtime`), stand-in serving processes and bare routers.
Other suites may use `local_runtime` too; every process started here is stopped at teardown."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deployments.runtime.base import DeploymentRef, Track, VersionSpec
from deployments.runtime.local import PROJECT_ROOT, LocalRuntime, free_port, read_json

STANDIN_COMMAND = [sys.executable, "-m", "tests.runtime.standin_serving"]
# Fast enough for tests, slow enough that a crash loop is observable.
FAST_SUPERVISOR_ARGS = {
    "interval": 0.1,
    "grace": 3.0,
    "crash_limit": 3,
    "crash_window": 30.0,
    "backoff_base": 0.1,
    "backoff_max": 1.0,
    "probe_timeout": 0.5,
}


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until predicate() is truthy (and return it); fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie (no psutil: /proc and signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(url: str, method: str = "GET", data: Any = None, timeout: float = 2.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@dataclass
class SupervisedRuntime:
    """A supervisor process on a state directory, and a LocalRuntime that writes to it."""

    state_dir: Path
    runtime: LocalRuntime
    supervisor_args: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    history: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> SupervisedRuntime:
        argv = [sys.executable, "-m", "deployments.runtime.supervisor"]
        argv += ["--state-dir", str(self.state_dir), "--log-level", "WARNING"]
        for key, value in self.supervisor_args.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        log = (self.state_dir / "supervisor.log").open("ab")
        self.process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.history.append(self.process)
        return self

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the supervisor (it stops its children) and return its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL the supervisor alone, as a crash would: its children keep running."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def recorded_pids(self) -> set[int]:
        """Every child pid the supervisor has recorded in observed state or its stop list."""
        pids: set[int] = set()
        for observed in self.state_dir.glob("deployments/*/*/observed.json"):
            data = read_json(observed) or {}
            for record in [*data.get("versions", {}).values(), data.get("router") or {}]:
                if record.get("pid"):
                    pids.add(record["pid"])
        stopping = read_json(self.state_dir / "stopping.json") or {}
        pids.update(r["pid"] for r in stopping.get("children", []))
        return pids

    def observed(self, ref: DeploymentRef) -> dict[str, Any]:
        path = self.state_dir / "deployments" / ref.namespace / ref.name / "observed.json"
        return read_json(path) or {}

    def log(self, ref: DeploymentRef, name: str) -> str:
        path = self.state_dir / "deployments" / ref.namespace / ref.name / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def teardown(self) -> None:
        pids = self.recorded_pids()
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        # A supervisor that died abnormally must not leak its children into other tests.
        for pid in pids | self.recorded_pids():
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def local_runtime(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SupervisedRuntime]]:
    """Factory: `local_runtime(serving_command=..., progress_deadline_s=..., start=True,
    **supervisor_args)` -> SupervisedRuntime with its supervisor running (unless start=False)."""
    made: list[SupervisedRuntime] = []

    def factory(
        *,
        serving_command: list[str] | None = None,
        progress_deadline_s: float = 60.0,
        start: bool = True,
        **supervisor_args: Any,
    ) -> SupervisedRuntime:
        state_dir = tmp_path_factory.mktemp("runtime-state")
        runtime = LocalRuntime(
            state_dir,
            serving_command=serving_command or STANDIN_COMMAND,
            progress_deadline_s=progress_deadline_s,
        )
        sr = SupervisedRuntime(state_dir, runtime, {**FAST_SUPERVISOR_ARGS, **supervisor_args})
        made.append(sr)
        return sr.start() if start else sr

    yield factory
    for sr in made:
        sr.teardown()


@pytest.fixture
def artifact(tmp_path: Path) -> tuple[str, str]:
    """A model artifact file: (file:// URI, its "sha256:<hex>" digest)."""
    path = tmp_path / "model.bin"
    path.write_bytes(b"a tiny stand-in model artifact\n")
    return path.as_uri(), "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ref() -> DeploymentRef:
    return DeploymentRef(name="fraud", model="fraud-detector", environment="dev")


def version_spec(artifact: tuple[str, str], version: int, **kwargs: Any) -> VersionSpec:
    uri, digest = artifact
    return VersionSpec(version=version, artifact_uri=uri, artifact_digest=digest, **kwargs)


def apply_ready(
    sr: SupervisedRuntime,
    ref: DeploymentRef,
    artifact: tuple[str, str],
    versions: dict[int, Track],
) -> None:
    for version, track in versions.items():
        sr.runtime.apply_version(ref, version_spec(artifact, version), track)
    for version in versions:
        wait_for(
            lambda v=version: sr.runtime.version_status(ref, v).ready,
            what=f"version {version} ready",
        )


@pytest.fixture
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Factory: start a stand-in serving process for `version`; returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def factory(version: str, **env: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [*STANDIN_COMMAND, "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "MODEL_VERSION": version, **env},
            start_new_session=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + "/v2/health/live"), what=f"stand-in {version} up")
        return url

    yield factory
    for proc in procs:
        _stop_group(proc)


@pytest.fixture
def router_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Factory: start `python -m deployments.runtime.router` with a routes table and extra CLI
    flags; returns its base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def factory(routes: dict[str, Any] | None = None, *extra: str) -> str:
        port = free_port()
        argv = [sys.executable, "-m", "deployments.runtime.router", "--port", str(port), *extra]
        if routes is not None:
            path = tmp_path_factory.mktemp("routes") / "routes.json"
            path.write_text(json.dumps(routes))
            argv += ["--routes-file", str(path)]
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url + "/-/health"), what="router up")
        return url

    yield factory
    for proc in procs:
        _stop_group(proc)


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=0.5)[0] == 200
    except OSError:
        return False
