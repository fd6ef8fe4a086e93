"""The demo's switches: drifted traffic from the generator, and a fault (slow or failing) in
one version of the demo deployment. Only in demo mode (MODELPLANE_DEMO); never reachable in a
production configuration. Each switch is audited like any other change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from core.errors import Conflict, NotFound, ValidationFailed
from deployments import engine
from deployments.models import Deployment
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require

FAULTS = {
    "heal": {"error_rate": 0.0, "latency_ms": 0},
    "slow": {"error_rate": 0.0, "latency_ms": 400},
    "failing": {"error_rate": 0.3, "latency_ms": 0},
}


def _require_demo() -> None:
    if not settings.DEMO:
        raise NotFound("the demo switches exist only in demo mode")


def control_file() -> Path:
    return Path(settings.VAR_DIR) / "demo" / "traffic.json"


@dataclass(frozen=True)
class TrafficControl:
    drift: bool
    rate: float


def traffic_control() -> TrafficControl:
    _require_demo()
    try:
        data = json.loads(control_file().read_text())
    except (OSError, ValueError):
        data = {}
    return TrafficControl(bool(data.get("drift", False)), float(data.get("rate", 20)))


def traffic_control_set(*, actor: Actor, deployment: Deployment, drift: bool) -> TrafficControl:
    _require_demo()
    require(actor.principal, Action.DEPLOYMENT_MANAGE, deployment)
    current = traffic_control()
    path = control_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"drift": drift, "rate": current.rate}))
    tmp.replace(path)
    audit.record(
        actor=actor,
        action="demo.traffic",
        target=deployment,
        before={"drift": current.drift},
        after={"drift": drift},
    )
    return TrafficControl(drift, current.rate)


def version_faults(deployment: Deployment) -> dict[int, dict[str, Any] | None]:
    """The fault switch of each running version (None when the version cannot be reached)."""
    _require_demo()
    runtime = engine.runtime_of(deployment)
    ref = engine.deployment_ref(deployment)
    faults: dict[int, dict[str, Any] | None] = {}
    with httpx.Client(timeout=2.0) as client:
        for number in sorted(runtime.list_versions(ref)):
            url = runtime.endpoint(ref, number)
            try:
                faults[number] = client.get(f"{url}/-/faults").json() if url else None
            except (httpx.HTTPError, ValueError):
                faults[number] = None
    return faults


def version_fault_set(
    *, actor: Actor, deployment: Deployment, version: int, fault: str
) -> dict[str, Any]:
    _require_demo()
    require(actor.principal, Action.DEPLOYMENT_MANAGE, deployment)
    if fault not in FAULTS:
        raise ValidationFailed(f"must be one of {sorted(FAULTS)}", field="fault")
    runtime = engine.runtime_of(deployment)
    ref = engine.deployment_ref(deployment)
    url = runtime.endpoint(ref, version)
    if url is None:
        raise Conflict(f"v{version} is not running", field="version")
    try:
        response = httpx.post(f"{url}/-/faults", json=FAULTS[fault], timeout=3.0)
    except httpx.HTTPError as exc:
        raise Conflict(f"v{version} did not answer: {exc}", field="version") from None
    if response.status_code == 404:
        raise Conflict(f"v{version} does not allow faults (SERVING_ALLOW_FAULTS)", field="version")
    response.raise_for_status()
    audit.record(
        actor=actor,
        action="demo.fault",
        target=deployment,
        after={"version": version, "fault": fault, **FAULTS[fault]},
    )
    return response.json()
