"""The local runtime's supervisor: a long-running process that makes the desired state written by
LocalRuntime true on this host (serving processes, one router per deployment) and writes back what
it observed.

It reconciles level-triggered, controller style: every loop it reads desired and observed state,
takes the next step for each deployment and records it; it never assumes what it did last time.
It must never leave a child behind: children run in their own process groups, are stopped with
SIGTERM then SIGKILL, and are re-adopted or replaced by the next supervisor if this one dies.

Run: python -m deployments.runtime.supervisor --state-dir DIR
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import http.client
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.runtime.local import (
    LOOPBACK,
    PROJECT_ROOT,
    desired_path,
    free_port,
    iter_deployment_dirs,
    observed_path,
    read_json,
    routes_path,
    wake_path,
    write_json_atomic,
)

log = logging.getLogger("modelplane.supervisor")


@dataclass(frozen=True)
class SupervisorSettings:
    interval_s: float = 0.2
    grace_s: float = 5.0  # SIGTERM -> SIGKILL
    crash_limit: int = 5  # this many exits within crash_window_s marks a version FAILED
    crash_window_s: float = 60.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    probe_timeout_s: float = 0.5
    heartbeat_s: float = 1.0  # rewrite observed state at least this often
    router_upstream_timeout_s: float = 30.0
    router_mirror_concurrency: int = 32

    def backoff(self, crashes: int) -> float:
        return min(self.backoff_base_s * 2 ** max(crashes - 1, 0), self.backoff_max_s)


def proc_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the
    pid it identifies a process even after pid reuse. None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _log_tail(path: Path, lines: int = 3, limit: int = 500) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - 4096, 0))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)[-limit:]


class Child:
    """One process the supervisor started (it holds the Popen) or adopted from a previous
    supervisor (pid and start time only). Each leads its own process group."""

    def __init__(
        self,
        pid: int,
        port: int,
        start_ticks: int | None,
        *,
        popen: subprocess.Popen[bytes] | None = None,
        launch_hash: str = "",
        log_path: Path | None = None,
    ) -> None:
        self.pid = pid
        self.port = port
        self.start_ticks = start_ticks
        self.popen = popen
        self.launch_hash = launch_hash
        self.log_path = log_path

    @classmethod
    def spawn(
        cls,
        command: list[str],
        *,
        port: int,
        env: dict[str, str],
        cwd: str,
        log_path: Path,
        launch_hash: str = "",
    ) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            popen = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a stop reaches its workers
            )
        return cls(
            popen.pid,
            port,
            proc_start_ticks(popen.pid),
            popen=popen,
            launch_hash=launch_hash,
            log_path=log_path,
        )

    @classmethod
    def adopt(cls, record: dict[str, Any], log_path: Path | None = None) -> Child | None:
        """The process a previous supervisor recorded, if that very process still runs."""
        pid, ticks = record.get("pid"), record.get("start_ticks")
        if pid is None or ticks is None or proc_start_ticks(int(pid)) != ticks:
            return None
        return cls(
            int(pid),
            int(record.get("port") or 0),
            int(ticks),
            launch_hash=record.get("launch_hash", ""),
            log_path=log_path,
        )

    def exit_code(self) -> int | None:
        """None while it runs; its exit code (or -1 if adopted and unknown) once it has gone."""
        if self.popen is not None:
            return self.popen.poll()
        return None if proc_start_ticks(self.pid) == self.start_ticks else -1

    def signal(self, sig: int) -> None:
        if self.popen is None and proc_start_ticks(self.pid) != self.start_ticks:
            return  # an adopted pid that is no longer ours: never signal a stranger
        _signal_group(self.pid, sig)

    def record(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "start_ticks": self.start_ticks}


@dataclass
class Restartable:
    """Crash bookkeeping shared by versions and routers."""

    child: Child | None = None
    restarts: int = 0
    crashes: collections.deque[float] = field(default_factory=collections.deque)
    next_start: float = 0.0
    last_error: str = ""

    def note_exit(self, code: int, settings: SupervisorSettings, now: float) -> None:
        assert self.child is not None
        tail = _log_tail(self.child.log_path) if self.child.log_path else ""
        self.last_error = f"exited with code {code}" + (f": {tail}" if tail else "")
        self.restarts += 1
        self.crashes.append(now)
        while self.crashes and now - self.crashes[0] > settings.crash_window_s:
            self.crashes.popleft()
        self.next_start = now + settings.backoff(len(self.crashes))


@dataclass
class VersionState(Restartable):
    generation: int = 0  # the desired generation this state was reconciled against
    ready: bool = False
    failed: bool = False
    state: str = "pending"


@dataclass
class RouterState(Restartable):
    pushed: dict[str, Any] | None = None  # the table the running router acknowledged
    written: dict[str, Any] | None = None  # the table in routes.json


@dataclass
class DeploymentState:
    ddir: Path
    versions: dict[str, VersionState] = field(default_factory=dict)
    router: RouterState = field(default_factory=RouterState)
    last_observed: str = ""
    last_written_at: float = 0.0


class Supervisor:
    def __init__(self, state_dir: Path, settings: SupervisorSettings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings or SupervisorSettings()
        self.deployments: dict[Path, DeploymentState] = {}
        self.stopping: list[tuple[Child, float]] = []  # (child, SIGKILL deadline)
        self._stop_requested = False

    # --- lifecycle ---

    def run(self) -> int:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.state_dir / "supervisor.lock").open("a")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another supervisor already runs against %s", self.state_dir)
            return 2
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        log.info("supervising %s (pid %d)", self.state_dir, os.getpid())
        wake = self._bind_wake_socket()
        try:
            self.adopt()
            while not self._stop_requested:
                started = time.monotonic()
                self.tick()
                # Wait for the next loop in short slices (a stop request is honoured promptly),
                # and act at once on a deployment whose desired state LocalRuntime just changed.
                while not self._stop_requested and (
                    (left := self.settings.interval_s - (time.monotonic() - started)) > 0
                ):
                    self._wait_for_wake(wake, min(0.05, left))
        finally:
            if wake is not None:
                wake.close()
                with contextlib.suppress(OSError):
                    wake_path(self.state_dir).unlink()
            self.shutdown()
            lock.close()
        return 0

    def _bind_wake_socket(self) -> socket.socket | None:
        """The Unix datagram socket LocalRuntime nudges after it changes desired state (we hold
        the supervisor lock, so a socket file left there is a dead supervisor's). None when it
        cannot be bound (a path too long for AF_UNIX): the loop alone then finds changes."""
        path = wake_path(self.state_dir)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sock.bind(str(path))
            sock.setblocking(False)
        except OSError as exc:
            log.warning("no wake-up socket at %s (%s): polling only", path, exc)
            sock.close()
            return None
        return sock

    def _wait_for_wake(self, wake: socket.socket | None, timeout: float) -> None:
        """Sleep up to `timeout`; a nudge ends it, and each deployment it names is reconciled
        at once. (select is retried after our signal handler runs: PEP 475.)"""
        if wake is None:
            time.sleep(timeout)
            return
        readable, _, _ = select.select([wake], [], [], timeout)
        if not readable:
            return
        nudged = self._nudged(wake)
        self._reap_stopping()
        for ddir in sorted(nudged):
            try:
                self.reconcile(ddir)
            except Exception:
                log.exception("reconciling %s failed", ddir)

    def _nudged(self, wake: socket.socket) -> set[Path]:
        """The deployment directories named by the nudges waiting on the socket. Anyone who may
        write to the state dir may nudge, so a nudge only ever selects one of our deployment
        directories, keyed as the loop keys it; anything else is ignored."""
        root = self.state_dir / "deployments"
        nudged: set[Path] = set()
        while True:
            try:
                message = wake.recv(4096)
            except OSError:  # BlockingIOError: drained
                return nudged
            named = Path(message.decode("utf-8", "replace"))
            ddir = root / named.parent.name / named.name
            if (
                named.is_absolute()
                and named.parent.name
                and ddir.is_dir()
                and named.resolve() == ddir.resolve()
            ):
                nudged.add(ddir)

    def _request_stop(self, signum: int, _frame: Any) -> None:
        log.info("received signal %d, stopping", signum)
        self._stop_requested = True

    def adopt(self) -> None:
        """Take over (or cleanly replace) the processes a previous supervisor left running."""
        leftovers = read_json(self.state_dir / "stopping.json") or {}
        for record in leftovers.get("children", []):
            if (child := Child.adopt(record)) is not None:
                self._stop(child)
        used: set[int] = set()
        for ddir in iter_deployment_dirs(self.state_dir):
            observed = read_json(observed_path(ddir)) or {}
            desired = read_json(desired_path(ddir)) or {"versions": {}}
            dep = self.deployments.setdefault(ddir, DeploymentState(ddir))
            for key, record in (observed.get("versions") or {}).items():
                child = Child.adopt(record, ddir / "logs" / f"v{key}.log")
                if child is None:
                    continue
                entry = desired["versions"].get(key)
                if (
                    entry is not None
                    and entry["replicas"] > 0
                    and entry["launch_hash"] == child.launch_hash
                    and child.port not in used
                ):
                    used.add(child.port)
                    dep.versions[key] = VersionState(
                        child=child, restarts=record.get("restarts", 0)
                    )
                    log.info("adopted %s v%s (pid %d)", ddir.name, key, child.pid)
                else:
                    self._stop(child)
            router = Child.adopt(observed.get("router") or {}, ddir / "logs" / "router.log")
            if router is not None:
                if router.port == desired.get("router_port") and router.port not in used:
                    used.add(router.port)
                    dep.router = RouterState(child=router)
                else:
                    self._stop(router)

    def shutdown(self) -> None:
        for dep in self.deployments.values():
            self._forget(dep)
            for vs in dep.versions.values():
                vs.ready, vs.state = False, "supervisor stopped"
        deadline = time.monotonic() + self.settings.grace_s + 2.0
        while self.stopping and time.monotonic() < deadline:
            self._reap_stopping()
            time.sleep(0.05)
        for child, _ in self.stopping:
            log.error("pid %d survived SIGKILL", child.pid)
        for dep in self.deployments.values():
            write_json_atomic(observed_path(dep.ddir), self._observed(dep, heartbeat=False))
        self._write_stopping()

    # --- the loop ---

    def tick(self) -> None:
        self._reap_stopping()
        seen: set[Path] = set()
        for ddir in iter_deployment_dirs(self.state_dir):
            seen.add(ddir)
            try:
                self.reconcile(ddir)
            except Exception:
                # One broken deployment (a corrupt file, a full disk) must not stop the others.
                log.exception("reconciling %s failed", ddir)
        for ddir in set(self.deployments) - seen:
            self._forget(self.deployments.pop(ddir))

    def reconcile(self, ddir: Path) -> None:
        now = time.monotonic()
        desired = read_json(desired_path(ddir))
        dep = self.deployments.setdefault(ddir, DeploymentState(ddir))
        if desired is None:
            self._forget(dep)
            dep.versions.clear()
            self._write_observed(dep, now)
            return
        for key in [k for k in dep.versions if k not in desired["versions"]]:
            vs = dep.versions.pop(key)
            if vs.child is not None:
                self._stop(vs.child)
        for key, entry in desired["versions"].items():
            self._reconcile_version(dep, key, entry, now)
        self._reconcile_router(dep, desired, now)
        self._write_observed(dep, now)

    def _reconcile_version(
        self, dep: DeploymentState, key: str, entry: dict[str, Any], now: float
    ) -> None:
        vs = dep.versions.setdefault(key, VersionState())
        if entry["generation"] != vs.generation:
            # A new desired generation gets a fresh crash budget and must be observed ready anew.
            vs.generation = entry["generation"]
            vs.failed, vs.ready, vs.next_start = False, False, 0.0
            vs.crashes.clear()
        if vs.child is not None and vs.child.launch_hash != entry["launch_hash"]:
            self._stop(vs.child)
            vs.child, vs.ready = None, False
        if vs.child is not None and (code := vs.child.exit_code()) is not None:
            vs.note_exit(code, self.settings, now)
            _signal_group(vs.child.pid, signal.SIGKILL)  # whatever of its group outlived it
            vs.child, vs.ready = None, False
            if len(vs.crashes) >= self.settings.crash_limit:
                vs.failed = True
                vs.last_error = (
                    f"crash loop: {len(vs.crashes)} exits within "
                    f"{self.settings.crash_window_s:g}s; last {vs.last_error}"
                )
                log.warning("%s v%s failed: %s", dep.ddir.name, key, vs.last_error)
        if entry["replicas"] == 0:
            if vs.child is not None:
                self._stop(vs.child)
                vs.child = None
            vs.ready, vs.state = False, "stopped"
            return
        if vs.failed:
            vs.state = "failed"
            return
        if vs.child is None:
            if now < vs.next_start:
                vs.state = "backoff"
                return
            port = free_port(avoid=self._ports_in_use())
            try:
                vs.child = Child.spawn(
                    [*entry["command"], "--host", LOOPBACK, "--port", str(port)],
                    port=port,
                    env={**os.environ, **entry["env"]},
                    cwd=entry["cwd"],
                    log_path=dep.ddir / "logs" / f"v{key}.log",
                    launch_hash=entry["launch_hash"],
                )
            except OSError as exc:
                vs.failed, vs.state, vs.last_error = True, "failed", f"cannot start: {exc}"
                return
            log.info("started %s v%s pid %d port %d", dep.ddir.name, key, vs.child.pid, port)
            vs.state = "starting"
            return
        vs.ready = self._probe(vs.child.port, "/v2/health/ready")
        vs.state = "ready" if vs.ready else "starting"

    def _reconcile_router(self, dep: DeploymentState, desired: dict[str, Any], now: float) -> None:
        rs = dep.router
        traffic = desired.get("traffic") or {"weights": {}, "mirror": None}
        # Traffic only ever goes to a process observed ready.
        table = {
            "weights": traffic["weights"],
            "mirror": traffic["mirror"],
            "backends": {
                key: f"http://{LOOPBACK}:{vs.child.port}"
                for key, vs in sorted(dep.versions.items())
                if vs.child is not None and vs.ready
            },
        }
        port = int(desired["router_port"])
        if rs.child is not None and rs.child.port != port:
            self._stop(rs.child)
            rs.child, rs.pushed = None, None
        if rs.child is not None and (code := rs.child.exit_code()) is not None:
            rs.note_exit(code, self.settings, now)
            _signal_group(rs.child.pid, signal.SIGKILL)
            rs.child, rs.pushed = None, None
        if rs.child is None:
            self._write_routes(dep, table)  # what a (re)started router loads
            if now < rs.next_start:
                return
            rs.child = Child.spawn(
                [
                    sys.executable,
                    "-m",
                    "deployments.runtime.router",
                    "--host",
                    LOOPBACK,
                    "--port",
                    str(port),
                    "--routes-file",
                    str(routes_path(dep.ddir)),
                    "--upstream-timeout",
                    str(self.settings.router_upstream_timeout_s),
                    "--mirror-concurrency",
                    str(self.settings.router_mirror_concurrency),
                ],
                port=port,
                env=dict(os.environ),
                cwd=str(PROJECT_ROOT),
                log_path=dep.ddir / "logs" / "router.log",
            )
            return
        if rs.pushed != table:
            if self._put_routes(port, table):
                rs.pushed = table
        elif not self._probe(port, "/-/health"):
            rs.pushed = None  # unreachable: push again once it answers
        # After the push, not before: the file only serves a router that restarts, and its
        # fsync would otherwise delay every switch (tens of ms on a busy disk).
        self._write_routes(dep, table)

    @staticmethod
    def _write_routes(dep: DeploymentState, table: dict[str, Any]) -> None:
        if table != dep.router.written:
            write_json_atomic(routes_path(dep.ddir), table)
            dep.router.written = table

    def _forget(self, dep: DeploymentState) -> None:
        for vs in dep.versions.values():
            if vs.child is not None:
                self._stop(vs.child)
                vs.child = None
        if dep.router.child is not None:
            self._stop(dep.router.child)
            dep.router.child, dep.router.pushed = None, None

    # --- processes ---

    def _stop(self, child: Child) -> None:
        child.signal(signal.SIGTERM)
        self.stopping.append((child, time.monotonic() + self.settings.grace_s))
        self._write_stopping()

    def _reap_stopping(self) -> None:
        if not self.stopping:
            return
        now = time.monotonic()
        remaining = []
        for child, deadline in self.stopping:
            if child.exit_code() is not None:
                _signal_group(child.pid, signal.SIGKILL)  # leftovers of its group
                continue
            if now >= deadline:
                log.warning(
                    "pid %d ignored SIGTERM for %gs: SIGKILL", child.pid, self.settings.grace_s
                )
                child.signal(signal.SIGKILL)
            remaining.append((child, deadline))
        if len(remaining) != len(self.stopping):
            self.stopping = remaining
            self._write_stopping()

    def _write_stopping(self) -> None:
        records = [child.record() for child, _ in self.stopping]
        write_json_atomic(self.state_dir / "stopping.json", {"children": records})

    def _ports_in_use(self) -> set[int]:
        ports = {c.port for c, _ in self.stopping}
        for dep in self.deployments.values():
            ports.update(vs.child.port for vs in dep.versions.values() if vs.child is not None)
            if dep.router.child is not None:
                ports.add(dep.router.child.port)
            with contextlib.suppress(OSError, ValueError, KeyError):
                ports.add(int((read_json(desired_path(dep.ddir)) or {})["router_port"]))
        return ports

    # --- HTTP to children (loopback only) ---

    def _probe(self, port: int, path: str) -> bool:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=self.settings.probe_timeout_s)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _put_routes(self, port: int, table: dict[str, Any]) -> bool:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=self.settings.probe_timeout_s)
        try:
            body = json.dumps(table)
            conn.request("PUT", "/-/routes", body, {"Content-Type": "application/json"})
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # --- observed state ---

    def _observed(self, dep: DeploymentState, *, heartbeat: bool = True) -> dict[str, Any]:
        versions = {}
        for key, vs in dep.versions.items():
            versions[key] = {
                **(vs.child.record() if vs.child else {"pid": None, "port": None}),
                "launch_hash": vs.child.launch_hash if vs.child else None,
                "generation": vs.generation,
                "ready": vs.ready,
                "failed": vs.failed,
                "state": vs.state,
                "restarts": vs.restarts,
                "last_error": vs.last_error,
            }
        rs = dep.router
        router = {
            **(rs.child.record() if rs.child else {"pid": None, "port": None}),
            "routes": rs.pushed,
            "restarts": rs.restarts,
            "last_error": rs.last_error,
        }
        observed: dict[str, Any] = {"versions": versions, "router": router}
        if heartbeat:
            observed["supervisor"] = {"pid": os.getpid()}
        return observed

    def _write_observed(self, dep: DeploymentState, now: float) -> None:
        observed = self._observed(dep)
        blob = json.dumps(observed, sort_keys=True)
        if blob == dep.last_observed and now - dep.last_written_at < self.settings.heartbeat_s:
            return
        observed["supervisor"]["heartbeat"] = time.time()
        write_json_atomic(observed_path(dep.ddir), observed)
        dep.last_observed, dep.last_written_at = blob, now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    defaults = SupervisorSettings()
    parser.add_argument("--interval", type=float, default=defaults.interval_s)
    parser.add_argument("--grace", type=float, default=defaults.grace_s)
    parser.add_argument("--crash-limit", type=int, default=defaults.crash_limit)
    parser.add_argument("--crash-window", type=float, default=defaults.crash_window_s)
    parser.add_argument("--backoff-base", type=float, default=defaults.backoff_base_s)
    parser.add_argument("--backoff-max", type=float, default=defaults.backoff_max_s)
    parser.add_argument("--probe-timeout", type=float, default=defaults.probe_timeout_s)
    parser.add_argument(
        "--router-upstream-timeout", type=float, default=defaults.router_upstream_timeout_s
    )
    parser.add_argument(
        "--router-mirror-concurrency", type=int, default=defaults.router_mirror_concurrency
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    settings = SupervisorSettings(
        interval_s=args.interval,
        grace_s=args.grace,
        crash_limit=args.crash_limit,
        crash_window_s=args.crash_window,
        backoff_base_s=args.backoff_base,
        backoff_max_s=args.backoff_max,
        probe_timeout_s=args.probe_timeout,
        router_upstream_timeout_s=args.router_upstream_timeout,
        router_mirror_concurrency=args.router_mirror_concurrency,
    )
    return Supervisor(args.state_dir, settings).run()


if __name__ == "__main__":
    sys.exit(main())
