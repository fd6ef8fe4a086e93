"""Pure builders of the Kubernetes objects that run one model version (Deployment, Service,
HorizontalPodAutoscaler) and route a deployment's traffic (Gateway API HTTPRoute), plus the
parser that reads an HTTPRoute back into a TrafficSplit.

Everything here is a plain function from runtime dataclasses to JSON-ready dicts: no I/O, no
client, no Django. Secrets appear only as `secretKeyRef` references: a value is never read,
built or logged here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployments.runtime.base import (
    DeploymentRef,
    Mirror,
    Track,
    TrafficSplit,
    VersionSpec,
)

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_MODEL = "modelplane.io/model"
LABEL_VERSION = "modelplane.io/version"
LABEL_TRACK = "modelplane.io/track"
LABEL_ENVIRONMENT = "modelplane.io/environment"
MANAGED_BY = "modelplane"

ANNOTATION_RELEASE = "modelplane.io/release-id"
ANNOTATION_DIGEST = "modelplane.io/artifact-digest"
ANNOTATION_ARTIFACT_URI = "modelplane.io/artifact-uri"

GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "model"
PORT_NAME = "http"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTE_PLURAL = "httproutes"

_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ObjectOptions:
    """Cluster-level settings that shape every object (from the control plane's config)."""

    gateway_name: str = "modelplane"
    gateway_namespace: str | None = None  # None: the Gateway lives in the route's namespace
    gateway_section_name: str | None = None
    service_port: int = 80
    container_port: int = 8080
    readiness_path: str = "/v2/health/ready"
    liveness_path: str = "/v2/health/live"
    progress_deadline_seconds: int = 600
    revision_history_limit: int = 3
    run_as_user: int = 10001


def version_object_name(ref: DeploymentRef, version: int) -> str:
    """The name shared by a version's Deployment, Service and HPA."""
    return f"{ref.name}-v{version}"


def label_value(value: str) -> str:
    """A Kubernetes label value (<= 63 chars of [A-Za-z0-9._-], alphanumeric at both ends)
    derived from free text such as a model name."""
    cleaned = _LABEL_VALUE_INVALID.sub("-", value)[:63]
    return cleaned.strip("-._")


def deployment_labels(ref: DeploymentRef) -> dict[str, str]:
    """Labels every object of this deployment carries; `list_versions` selects on these."""
    return {
        LABEL_NAME: ref.name,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL: label_value(ref.model),
        LABEL_ENVIRONMENT: label_value(ref.environment),
    }


def deployment_selector(ref: DeploymentRef) -> str:
    """Label selector (equality-based) matching every object of this deployment."""
    labels = {
        k: v for k, v in deployment_labels(ref).items() if k in (LABEL_NAME, LABEL_MANAGED_BY)
    }
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def selector_labels(ref: DeploymentRef, version: int) -> dict[str, str]:
    """The immutable pod selector of a version: model and version, never the track (a track
    moves between versions; a Deployment's selector can never change)."""
    return {
        LABEL_NAME: ref.name,
        LABEL_MODEL: label_value(ref.model),
        LABEL_VERSION: str(version),
    }


def version_labels(ref: DeploymentRef, version: int, track: Track) -> dict[str, str]:
    return {
        **deployment_labels(ref),
        LABEL_VERSION: str(version),
        LABEL_TRACK: track.value,
    }


def version_annotations(spec: VersionSpec) -> dict[str, str]:
    annotations = {
        ANNOTATION_DIGEST: spec.artifact_digest,
        ANNOTATION_ARTIFACT_URI: spec.artifact_uri,
    }
    if spec.release_id is not None:
        annotations[ANNOTATION_RELEASE] = str(spec.release_id)
    return annotations


def _metadata(
    name: str, ref: DeploymentRef, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ref.namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def container_env(ref: DeploymentRef, spec: VersionSpec, track: Track) -> list[dict[str, Any]]:
    """Public env, then the serving contract, then secret references. Later names win, so a
    config can never shadow MODEL_* with its own value."""
    merged: dict[str, dict[str, Any]] = {}
    for name, value in sorted(spec.env.items()):
        merged[name] = {"name": name, "value": value}
    serving = {
        **dict(sorted(spec.serving_env.items())),
        "MODEL_NAME": ref.model,
        "MODEL_VERSION": str(spec.version),
        "MODEL_ARTIFACT_URI": spec.artifact_uri,
        "MODEL_ARTIFACT_DIGEST": spec.artifact_digest,
        "MODEL_TRACK": track.value,
    }
    for name, value in serving.items():
        merged[name] = {"name": name, "value": value}
    for secret in sorted(spec.secret_refs, key=lambda s: s.env_name):
        merged[secret.env_name] = {
            "name": secret.env_name,
            "valueFrom": {"secretKeyRef": {"name": secret.secret_name, "key": secret.secret_key}},
        }
    return list(merged.values())


def container_resources(spec: VersionSpec) -> dict[str, Any]:
    res = spec.resources
    limits: dict[str, str] = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    if res.gpu > 0:
        # Extended resources may only be set as limits; Kubernetes copies them to requests.
        limits[GPU_RESOURCE] = str(res.gpu)
    return {
        "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
        "limits": limits,
    }


def deployment_manifest(
    ref: DeploymentRef,
    spec: VersionSpec,
    track: Track,
    options: ObjectOptions,
    *,
    replicas: int | None = None,
) -> dict[str, Any]:
    """apps/v1 Deployment of one version. `replicas` overrides spec.replicas (the runtime keeps
    the live count when an HPA owns scaling)."""
    name = version_object_name(ref, spec.version)
    selector = selector_labels(ref, spec.version)
    labels = version_labels(ref, spec.version, track)
    annotations = version_annotations(spec)
    probe_port = PORT_NAME
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": options.container_port, "protocol": "TCP"}],
        "env": container_env(ref, spec, track),
        "resources": container_resources(spec),
        "readinessProbe": {
            "httpGet": {"path": options.readiness_path, "port": probe_port},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": options.liveness_path, "port": probe_port},
            "initialDelaySeconds": 15,
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, ref, labels, annotations),
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "selector": {"matchLabels": selector},
            "progressDeadlineSeconds": options.progress_deadline_seconds,
            "revisionHistoryLimit": options.revision_history_limit,
            "strategy": {
                "type": "RollingUpdate",
                # Never drop below the desired count while rolling: traffic may be on it.
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": options.run_as_user,
                        "runAsGroup": options.run_as_user,
                        "fsGroup": options.run_as_user,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def service_manifest(
    ref: DeploymentRef, spec: VersionSpec, track: Track, options: ObjectOptions
) -> dict[str, Any]:
    """v1 Service of one version: the HTTPRoute's backendRefs point at these."""
    name = version_object_name(ref, spec.version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            name, ref, version_labels(ref, spec.version, track), version_annotations(spec)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ref, spec.version),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": options.service_port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def hpa_manifest(
    ref: DeploymentRef, spec: VersionSpec, track: Track, options: ObjectOptions
) -> dict[str, Any] | None:
    """autoscaling/v2 HorizontalPodAutoscaler of one version, or None without autoscaling."""
    if spec.autoscaling is None:
        return None
    auto = spec.autoscaling
    name = version_object_name(ref, spec.version)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(
            name, ref, version_labels(ref, spec.version, track), version_annotations(spec)
        ),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": auto.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def _service_backend(ref: DeploymentRef, version: int, options: ObjectOptions) -> dict[str, Any]:
    return {
        "group": "",
        "kind": "Service",
        "name": version_object_name(ref, version),
        "port": options.service_port,
    }


def httproute_manifest(
    ref: DeploymentRef, split: TrafficSplit, options: ObjectOptions
) -> dict[str, Any]:
    """gateway.networking.k8s.io/v1 HTTPRoute named after the deployment: one rule whose
    backendRefs carry the weights (zero weights kept, so the split round-trips) and whose
    RequestMirror filter carries the shadow share. Defaults the API server would add are
    written out, so a read-back compares equal."""
    parent: dict[str, Any] = {
        "group": GATEWAY_GROUP,
        "kind": "Gateway",
        "name": options.gateway_name,
    }
    if options.gateway_namespace:
        parent["namespace"] = options.gateway_namespace
    if options.gateway_section_name:
        parent["sectionName"] = options.gateway_section_name
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [
            {**_service_backend(ref, version, options), "weight": weight}
            for version, weight in sorted(split.weights.items())
        ],
    }
    if split.mirror is not None:
        rule["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": _service_backend(ref, split.mirror.version, options),
                    "percent": split.mirror.percent,
                },
            }
        ]
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": _metadata(ref.name, ref, deployment_labels(ref), {}),
        "spec": {"parentRefs": [parent], "rules": [rule]},
    }


def _version_of_backend(ref: DeploymentRef, backend: Mapping[str, Any]) -> int | None:
    if backend.get("kind", "Service") != "Service" or backend.get("group", "") != "":
        return None
    match = re.fullmatch(re.escape(ref.name) + r"-v(\d+)", str(backend.get("name", "")))
    return int(match.group(1)) if match else None


def traffic_from_httproute(ref: DeploymentRef, route: Mapping[str, Any]) -> TrafficSplit | None:
    """Read back the split an HTTPRoute serves. Backends that are not this deployment's
    version Services are ignored; weights are normalised to percentages when an operator
    edited them to another scale. None when the route has no rule."""
    rules = (route.get("spec") or {}).get("rules") or []
    if not rules:
        return None
    rule = rules[0]
    raw: dict[int, int] = {}
    for backend in rule.get("backendRefs") or []:
        version = _version_of_backend(ref, backend)
        if version is not None:
            raw[version] = raw.get(version, 0) + int(backend.get("weight", 1))
    weights = _as_percentages(raw)
    mirror: Mirror | None = None
    for flt in rule.get("filters") or []:
        if flt.get("type") != "RequestMirror":
            continue
        body = flt.get("requestMirror") or {}
        version = _version_of_backend(ref, body.get("backendRef") or {})
        if version is None:
            continue
        if "percent" in body:
            percent = int(body["percent"])
        elif "fraction" in body:
            frac = body["fraction"]
            percent = round(100 * int(frac["numerator"]) / int(frac.get("denominator", 100)))
        else:
            percent = 100
        mirror = Mirror(version=version, percent=percent)
        break
    return TrafficSplit(weights=weights, mirror=mirror)


def _as_percentages(raw: Mapping[int, int]) -> dict[int, int]:
    total = sum(raw.values())
    if not raw or total == 100:
        return dict(raw)
    if total == 0:
        # Every backend at weight 0: nothing is served; keep the versions, send none.
        return {}
    # Largest remainder, so the result still sums to exactly 100.
    exact = {v: 100 * w / total for v, w in raw.items()}
    floors = {v: int(x) for v, x in exact.items()}
    short = 100 - sum(floors.values())
    for v in sorted(exact, key=lambda v: exact[v] - floors[v], reverse=True)[:short]:
        floors[v] += 1
    return floors
