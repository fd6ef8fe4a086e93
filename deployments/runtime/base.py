"""The runtime interface that the release engine drives. Every call is idempotent: applying the
same spec twice, or after a crash, converges to the same objects (apply by name and labels,
never "create another"). Implementations never import Django models: the engine hands them
plain dataclasses."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class RuntimeFailure(Exception):
    """Base for runtime failures the engine may retry (transient) or surface."""


class TransientRuntimeError(RuntimeFailure):
    """A timeout, a 5xx, a conflict that survived retries: the engine retries with backoff."""


class PermanentRuntimeError(RuntimeFailure):
    """The request can never succeed as given (invalid object, forbidden): fail the step."""


class Track(enum.StrEnum):
    STABLE = "stable"
    CANARY = "canary"
    SHADOW = "shadow"
    PREVIEW = "preview"  # blue-green: the new colour, up at full size, receiving no traffic


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret value that lives in the runtime (a Kubernetes Secret key). The
    value itself is never read, stored or logged by the control plane."""

    env_name: str
    secret_name: str
    secret_key: str


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    gpu: int = 0


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int = 1
    max_replicas: int = 3
    target_cpu_utilization: int = 70


@dataclass(frozen=True)
class DeploymentRef:
    """Which deployment (one model in one environment) a call is about.

    `name` is a DNS-1123 label unique in the target (e.g. "fraud-detector"); object names are
    derived from it, so the same deployment always maps to the same objects."""

    name: str
    model: str
    environment: str
    namespace: str = "default"


@dataclass(frozen=True)
class VersionSpec:
    """Everything needed to run one model version. Built by the engine from the model version
    and the deployment's versioned config."""

    version: int
    artifact_uri: str
    artifact_digest: str  # "sha256:<hex>"
    image: str = ""  # container image pinned by digest (Kubernetes); unused by the local runtime
    replicas: int = 1
    resources: Resources = field(default_factory=Resources)
    autoscaling: Autoscaling | None = None
    env: dict[str, str] = field(default_factory=dict)  # public, non-secret settings only
    secret_refs: tuple[SecretRef, ...] = ()
    release_id: int | None = None  # recorded as an annotation/label for traceability
    # Serving settings, passed to the inference service as environment variables.
    serving_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mirror:
    version: int
    percent: int  # 0..100 of live traffic copied to this version; its answers are discarded


@dataclass(frozen=True)
class TrafficSplit:
    """Backend weights (version -> weight, summing to 100) and an optional mirror."""

    weights: dict[int, int]
    mirror: Mirror | None = None

    def __post_init__(self) -> None:
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must be >= 0")
        if self.weights and sum(self.weights.values()) != 100:
            raise ValueError(f"weights must sum to 100, got {sum(self.weights.values())}")
        if self.mirror is not None and not 0 <= self.mirror.percent <= 100:
            raise ValueError("mirror percent must be within 0..100")

    @classmethod
    def all_to(cls, version: int) -> TrafficSplit:
        return cls(weights={version: 100})


class Readiness(enum.StrEnum):
    PROGRESSING = "progressing"  # not ready yet, still within its progress deadline
    READY = "ready"  # observed ready: all desired replicas available at the current generation
    FAILED = "failed"  # progress deadline exceeded, crash-looping, or an unrecoverable error
    ABSENT = "absent"  # no such version in the runtime


@dataclass(frozen=True)
class VersionStatus:
    version: int
    readiness: Readiness
    desired_replicas: int = 0
    available_replicas: int = 0
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.readiness is Readiness.READY


@runtime_checkable
class Runtime(Protocol):
    """What the release engine needs from a place that runs model versions."""

    def apply_version(self, ref: DeploymentRef, spec: VersionSpec, track: Track) -> None:
        """Create or update the workload of one version (idempotent, by name and labels)."""

    def version_status(self, ref: DeploymentRef, version: int) -> VersionStatus:
        """Observe the version's readiness. Traffic may go to a version only when READY."""

    def scale_version(self, ref: DeploymentRef, version: int, replicas: int) -> None:
        """Set the replica count of a version that exists (0 keeps the objects, runs nothing)."""

    def remove_version(self, ref: DeploymentRef, version: int) -> None:
        """Delete the objects of a version; a version that does not exist is not an error."""

    def list_versions(self, ref: DeploymentRef) -> list[int]:
        """The versions this deployment has objects for in the runtime."""

    def set_traffic(self, ref: DeploymentRef, split: TrafficSplit) -> None:
        """Point the deployment's traffic at versions by weight, with an optional mirror."""

    def get_traffic(self, ref: DeploymentRef) -> TrafficSplit | None:
        """The split the runtime was told to serve, or None when nothing routes yet."""

    def traffic_applied(self, ref: DeploymentRef, split: TrafficSplit) -> bool:
        """True once the data plane actually serves `split` (a route change reaches it a moment
        after it is written). Nothing may be scaled down before this says so."""

    def endpoint(self, ref: DeploymentRef, version: int | None = None) -> str | None:
        """Base URL of one version (for smoke tests), or of the routed entry point when
        version is None; None when the control plane cannot reach it."""
