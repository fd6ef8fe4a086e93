"""LocalRuntime: runs model versions as processes on this host (development and the demo).

Its methods only read and write a desired-state file per deployment and read the observed state
that the supervisor (`python -m deployments.runtime.supervisor`) writes; they never start, signal
or talk to a process themselves, so they are safe to call from Celery workers and the web process
at once. Nothing here imports Django models.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deployments.runtime.base import (
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
    Readiness,
    Track,
    TrafficSplit,
    TransientRuntimeError,
    VersionSpec,
    VersionStatus,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SERVING_COMMAND: tuple[str, ...] = (sys.executable, "-m", "serving")
DEFAULT_PROGRESS_DEADLINE_S = 120.0
# The supervisor rewrites observed state every loop (well under a second); older than this and
# nobody is watching the processes, so nothing can be called READY.
DEFAULT_STALE_AFTER_S = 10.0
LOOPBACK = "127.0.0.1"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


# --- the state directory: shared by LocalRuntime (writes desired) and the supervisor (observed) ---


def deployment_dir(state_dir: Path, namespace: str, name: str) -> Path:
    return state_dir / "deployments" / namespace / name


def desired_path(ddir: Path) -> Path:
    return ddir / "desired.json"


def observed_path(ddir: Path) -> Path:
    return ddir / "observed.json"


def routes_path(ddir: Path) -> Path:
    return ddir / "routes.json"


def wake_path(state_dir: Path) -> Path:
    """The supervisor's wake-up socket (a Unix datagram socket it binds while it runs)."""
    return state_dir / "supervisor.sock"


def wake_supervisor(state_dir: Path, ddir: Path) -> None:
    """Tell a running supervisor that a deployment's desired state changed, so it acts now
    instead of at its next loop (a traffic switch reaches the router in milliseconds, not up to
    an interval later). Best effort and never blocking: with no supervisor listening, or a full
    socket buffer, the supervisor's own loop still finds the change."""
    # The supervisor may run elsewhere than our working directory: name the deployment by an
    # absolute path. OSError: no supervisor (ECONNREFUSED, ENOENT), its buffer full (EAGAIN), or
    # a state dir too deep for a socket path (the supervisor then has no socket either).
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(str(ddir.absolute()).encode(), str(wake_path(state_dir)))


def iter_deployment_dirs(state_dir: Path) -> Iterator[Path]:
    """Every deployment directory under the state dir (desired and/or observed present)."""
    root = state_dir / "deployments"
    if not root.is_dir():
        return
    for ns in sorted(p for p in root.iterdir() if p.is_dir()):
        yield from sorted(p for p in ns.iterdir() if p.is_dir())


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file in the same directory and os.replace, so readers only ever see a
    whole old file or a whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open() as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise TransientRuntimeError(f"{path} does not hold a JSON object")
    return data


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) around a read-modify-write of desired state, so two
    writers (a worker and the web process) never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def launch_hash(command: list[str], env: dict[str, str], cwd: str) -> str:
    """Identity of what a version's process runs: a change restarts the process, a change of
    anything else (replicas, traffic, the track) does not. MODEL_TRACK is the track at launch,
    for the service's model_info; promotion relabels a version without restarting it, as on
    Kubernetes, where the track lives in the Deployment's metadata only."""
    identity = {name: value for name, value in env.items() if name != "MODEL_TRACK"}
    blob = json.dumps({"command": command, "env": identity, "cwd": cwd}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def free_port(host: str = LOOPBACK, avoid: set[int] | frozenset[int] = frozenset()) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise TransientRuntimeError("could not find a free loopback port")


def _split_to_json(split: TrafficSplit) -> dict[str, Any]:
    return {
        "weights": {str(v): w for v, w in sorted(split.weights.items())},
        "mirror": (
            None
            if split.mirror is None
            else {"version": str(split.mirror.version), "percent": split.mirror.percent}
        ),
    }


def _split_from_json(data: dict[str, Any]) -> TrafficSplit:
    mirror = data.get("mirror")
    return TrafficSplit(
        weights={int(v): int(w) for v, w in data.get("weights", {}).items()},
        mirror=None if not mirror else Mirror(int(mirror["version"]), int(mirror["percent"])),
    )


class LocalRuntime:
    """The Runtime for this host. Desired state goes to `state_dir`; a supervisor process running
    against the same `state_dir` makes it true and reports back."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        serving_command: list[str] | tuple[str, ...] = DEFAULT_SERVING_COMMAND,
        cwd: str | os.PathLike[str] = PROJECT_ROOT,
        progress_deadline_s: float = DEFAULT_PROGRESS_DEADLINE_S,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.serving_command = list(serving_command)
        self.cwd = str(cwd)
        self.progress_deadline_s = progress_deadline_s
        self.stale_after_s = stale_after_s

    # --- Runtime protocol ---

    def apply_version(self, ref: DeploymentRef, spec: VersionSpec, track: Track) -> None:
        if spec.replicas < 0:
            raise PermanentRuntimeError("replicas must be >= 0")
        if not spec.artifact_digest.startswith("sha256:"):
            raise PermanentRuntimeError("artifact_digest must look like 'sha256:<hex>'")
        # Precedence: inherited environment < spec.env < spec.serving_env < MODEL_*, so no
        # setting can override the identity and digest the service verifies.
        env = {
            **spec.env,
            **spec.serving_env,
            "MODEL_NAME": ref.model,
            "MODEL_VERSION": str(spec.version),
            "MODEL_ARTIFACT_URI": spec.artifact_uri,
            "MODEL_ARTIFACT_DIGEST": spec.artifact_digest,
            "MODEL_TRACK": str(track),
        }
        entry = {
            "version": spec.version,
            "track": str(track),
            "replicas": spec.replicas,
            "command": self.serving_command,
            "cwd": self.cwd,
            "env": env,
            "launch_hash": launch_hash(self.serving_command, env, self.cwd),
            "progress_deadline_s": self.progress_deadline_s,
            # Secret references are recorded by name only; a local process inherits secret values
            # from the supervisor's own environment.
            "spec": json.loads(json.dumps(dataclasses.asdict(spec))),
        }
        with self._edit(ref) as desired:
            self._put_version(desired, str(spec.version), entry)

    def version_status(self, ref: DeploymentRef, version: int) -> VersionStatus:
        desired = self._read_desired(ref)
        entry = (desired or {}).get("versions", {}).get(str(version))
        if entry is None:
            return VersionStatus(version, Readiness.ABSENT)
        want = min(int(entry["replicas"]), 1)
        observed = read_json(observed_path(self._dir(ref))) or {}
        obs = observed.get("versions", {}).get(str(version))
        current = obs is not None and obs.get("generation") == entry["generation"]
        if current and obs.get("failed"):
            return VersionStatus(version, Readiness.FAILED, want, 0, obs.get("last_error", ""))
        heartbeat = observed.get("supervisor", {}).get("heartbeat")
        supervised = heartbeat is not None and time.time() - heartbeat <= self.stale_after_s
        if supervised and current and want == 0 and obs.get("pid") is None:
            return VersionStatus(version, Readiness.READY, 0, 0, "scaled to 0")
        if supervised and current and want == 1 and obs.get("ready"):
            return VersionStatus(version, Readiness.READY, 1, 1, f"serving on port {obs['port']}")
        waited = time.time() - float(entry["applied_at"])
        deadline = float(entry.get("progress_deadline_s", self.progress_deadline_s))
        detail = (obs or {}).get("last_error") or (obs or {}).get("state", "pending")
        if not supervised:
            detail = "no supervisor is reporting for this state directory"
        if waited > deadline:
            return VersionStatus(
                version,
                Readiness.FAILED,
                want,
                0,
                f"not ready within the {deadline:g}s progress deadline: {detail}",
            )
        return VersionStatus(version, Readiness.PROGRESSING, want, 0, detail)

    def scale_version(self, ref: DeploymentRef, version: int, replicas: int) -> None:
        if replicas < 0:
            raise PermanentRuntimeError("replicas must be >= 0")
        with self._edit(ref) as desired:
            entry = desired["versions"].get(str(version))
            if entry is None:
                raise PermanentRuntimeError(f"version {version} is not applied to {ref.name}")
            self._put_version(desired, str(version), {**entry, "replicas": replicas})

    def remove_version(self, ref: DeploymentRef, version: int) -> None:
        if self._read_desired(ref) is None:
            return
        with self._edit(ref) as desired:
            if desired["versions"].pop(str(version), None) is not None:
                desired["generation"] += 1

    def list_versions(self, ref: DeploymentRef) -> list[int]:
        desired = self._read_desired(ref) or {}
        return sorted(int(v) for v in desired.get("versions", {}))

    def set_traffic(self, ref: DeploymentRef, split: TrafficSplit) -> None:
        with self._edit(ref) as desired:
            applied = desired["versions"]
            targets = [v for v, w in split.weights.items() if w > 0]
            if split.mirror is not None:
                targets.append(split.mirror.version)
            missing = sorted({v for v in targets if str(v) not in applied})
            if missing:
                raise PermanentRuntimeError(
                    f"traffic names versions not applied to {ref.name}: {missing}"
                )
            traffic = _split_to_json(split)
            if desired.get("traffic") != traffic:
                desired["traffic"] = traffic
                desired["generation"] += 1

    def get_traffic(self, ref: DeploymentRef) -> TrafficSplit | None:
        """The declared split (like an HTTPRoute's spec). The supervisor pushes it to the router
        within a loop; `routed_traffic` says what the router has acknowledged."""
        traffic = (self._read_desired(ref) or {}).get("traffic")
        return None if traffic is None else _split_from_json(traffic)

    def endpoint(self, ref: DeploymentRef, version: int | None = None) -> str | None:
        desired = self._read_desired(ref)
        if desired is None:
            return None
        if version is None:
            return f"http://{LOOPBACK}:{desired['router_port']}"
        obs = (read_json(observed_path(self._dir(ref))) or {}).get("versions", {})
        port = obs.get(str(version), {}).get("port")
        if str(version) not in desired["versions"] or port is None:
            return None
        return f"http://{LOOPBACK}:{port}"

    # --- local extras (not part of the Runtime protocol) ---

    def routed_traffic(self, ref: DeploymentRef) -> dict[str, Any] | None:
        """The routing table the router last acknowledged (weights, mirror, backends)."""
        observed = read_json(observed_path(self._dir(ref))) or {}
        return observed.get("router", {}).get("routes")

    def traffic_applied(self, ref: DeploymentRef, split: TrafficSplit) -> bool:
        """The router acknowledged this split (the supervisor pushes tables asynchronously)."""
        routes = self.routed_traffic(ref)
        if not routes:
            return False
        live = {int(v): int(w) for v, w in (routes.get("weights") or {}).items() if int(w) > 0}
        wanted = {v: w for v, w in split.weights.items() if w > 0}
        mirror = routes.get("mirror")
        live_mirror = (int(mirror["version"]), int(mirror["percent"])) if mirror else None
        wanted_mirror = (split.mirror.version, split.mirror.percent) if split.mirror else None
        return live == wanted and live_mirror == wanted_mirror

    def remove_deployment(self, ref: DeploymentRef) -> None:
        """Forget the deployment: the supervisor stops its versions and its router."""
        ddir = self._dir(ref)
        with file_lock(ddir / "lock"), contextlib.suppress(FileNotFoundError):
            desired_path(ddir).unlink()

    # --- internals ---

    def _dir(self, ref: DeploymentRef) -> Path:
        for label in (ref.namespace, ref.name):
            if not _DNS_LABEL.match(label):
                raise PermanentRuntimeError(f"{label!r} is not a DNS-1123 label")
        return deployment_dir(self.state_dir, ref.namespace, ref.name)

    def _read_desired(self, ref: DeploymentRef) -> dict[str, Any] | None:
        return read_json(desired_path(self._dir(ref)))

    @contextlib.contextmanager
    def _edit(self, ref: DeploymentRef) -> Iterator[dict[str, Any]]:
        """Read-modify-write of the desired state under the deployment's lock; written back only
        when it changed, so repeating a call leaves the file (and its generation) untouched."""
        ddir = self._dir(ref)
        with file_lock(ddir / "lock"):
            current = read_json(desired_path(ddir))
            desired = current or {
                "ref": dataclasses.asdict(ref),
                # Allocated once and kept, so the deployment's URL survives restarts.
                "router_port": free_port(),
                "generation": 1,
                "versions": {},
                "traffic": None,
            }
            before = json.dumps(desired, sort_keys=True)
            yield desired
            changed = current is None or json.dumps(desired, sort_keys=True) != before
            if changed:
                write_json_atomic(desired_path(ddir), desired)
        if changed:
            wake_supervisor(self.state_dir, ddir)

    @staticmethod
    def _put_version(desired: dict[str, Any], key: str, entry: dict[str, Any]) -> None:
        old = desired["versions"].get(key)
        comparable = {k: v for k, v in (old or {}).items() if k not in ("generation", "applied_at")}
        new = {k: v for k, v in entry.items() if k not in ("generation", "applied_at")}
        if old is not None and comparable == new:
            return
        desired["versions"][key] = {
            **new,
            "generation": (old or {}).get("generation", 0) + 1,
            "applied_at": time.time(),
        }
        desired["generation"] += 1
