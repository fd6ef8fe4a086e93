"""Pure builders of the Kubernetes objects that run one model version (Deployment, Service,
HorizontalPodAutoscaler) and route a deployment's traffic (Gateway API HTTPRoute), the parser
that reads an HTTPRoute back into a TrafficSplit, and resource quantities in the canonical form
the API server stores.

Everything here is a plain function from runtime dataclasses to JSON-ready dicts: no I/O, no
client, no Django. Secrets appear only as `secretKeyRef` references: a value is never read,
built or logged here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal, localcontext
from typing import Any

from kubernetes.utils import parse_quantity

from deployments.runtime.base import (
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
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

# What kube-apiserver parses as a quantity (k8s.io/apimachinery resource.ParseQuantity): a
# decimal number, then a binary-SI suffix, a decimal-SI suffix or a decimal exponent. The
# client's `parse_quantity` is looser ("1K", "1_000", "NaN" pass), so this grammar goes first.
_QUANTITY = re.compile(
    r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = {
    -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"
}  # fmt: skip
_NANO = Decimal("1e-9")
_PRECISION = 60  # digits: exact for any quantity that fits a 20-character config field


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


# Resource quantities ------------------------------------------------------------------------


def _parse_quantity(text: str) -> tuple[Decimal, str]:
    """(value, format) of a quantity as the API server reads it: the value rounded up to the
    nano unit, the format ("binary", "decimal" or "exponent") named by its suffix."""
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    suffix = match.group("suffix") or ""
    if suffix.endswith("i"):
        form = "binary"
    elif len(suffix) > 1:  # "e3", "E-2"; a lone "E" is exa
        form = "exponent"
    else:
        form = "decimal"
    with localcontext() as context:
        context.prec = _PRECISION
        value = parse_quantity(text)
        if value.adjusted() >= _PRECISION - 10:
            raise ValueError(f"{text!r} is too large a quantity")
        # Like the API server: a non-zero amount below 1n becomes 1n, never 0.
        return value.quantize(_NANO, rounding=ROUND_UP), form


def quantity_value(text: str) -> Decimal:
    """The amount a quantity stands for ("500m" -> 0.5, "1Gi" -> 1073741824). ValueError when
    the API server could not parse it."""
    return _parse_quantity(text)[0]


def canonical_quantity(text: str) -> str:
    """The form the API server stores and returns a quantity in (apimachinery's
    Quantity.String): "0.5" -> "500m", "1000m" -> "1", "0.5Gi" -> "512Mi", "1024Mi" -> "1Gi".
    A binary amount that is not a whole number of at least 1024 is written in decimal SI, as the
    server does ("0.5Ki" -> "512"). ValueError when the API server could not parse it."""
    value, form = _parse_quantity(text)
    if value == 0:
        return "0"
    with localcontext() as context:
        context.prec = _PRECISION
        if form == "binary" and (abs(value) < 1024 or value != value.to_integral_value()):
            form = "decimal"
        if form == "binary":
            number, power = int(value), 0
            while number % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
                number, power = number // 1024, power + 1
            return f"{number}{_BINARY_SUFFIXES[power]}"
        sign, digits, exponent = value.normalize().as_tuple()
        assert isinstance(exponent, int)
        # The largest exponent that is a multiple of 3 and keeps the number whole.
        shift = exponent % 3
        number = int("".join(map(str, digits))) * 10**shift * (-1 if sign else 1)
        exponent -= shift
    if form == "decimal" and exponent in _DECIMAL_SUFFIXES:
        return f"{number}{_DECIMAL_SUFFIXES[exponent]}"
    return f"{number}e{exponent}" if exponent else str(number)


def same_quantity(desired: Any, live: Any) -> bool:
    """Equal amounts ("0.5" and "500m"); text that is no quantity compares as text."""
    try:
        return quantity_value(desired) == quantity_value(live)
    except ValueError:
        return bool(desired == live)


# Objects --------------------------------------------------------------------------------------


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


def pod_labels(ref: DeploymentRef, version: int) -> dict[str, str]:
    """Labels of a version's pods: what they are (deployment, model, version), never which track
    they serve. A track change then leaves the pod template alone, so it rolls no pod; the
    Deployment's selector and the Service's selector are subsets of these."""
    return {**deployment_labels(ref), LABEL_VERSION: str(version)}


def version_labels(ref: DeploymentRef, version: int, track: Track) -> dict[str, str]:
    """Labels of a version's Deployment, Service and HPA: the pods' labels plus the track."""
    return {**pod_labels(ref, version), LABEL_TRACK: track.value}


def pod_annotations(spec: VersionSpec) -> dict[str, str]:
    """What the pods run (the artifact), so a new artifact rolls them and nothing else does."""
    return {
        ANNOTATION_DIGEST: spec.artifact_digest,
        ANNOTATION_ARTIFACT_URI: spec.artifact_uri,
    }


def version_annotations(spec: VersionSpec) -> dict[str, str]:
    """Annotations of a version's objects: the artifact, and the release that last applied it."""
    annotations = pod_annotations(spec)
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


def container_env(ref: DeploymentRef, spec: VersionSpec) -> list[dict[str, Any]]:
    """Public env, then the serving contract, then secret references. Later names win, so a
    config can never shadow MODEL_* with its own value. No MODEL_TRACK: the track is not the
    pods' to know (see pod_labels), and an env var that changed with it would roll them."""
    merged: dict[str, dict[str, Any]] = {}
    for name, value in sorted(spec.env.items()):
        merged[name] = {"name": name, "value": value}
    serving = {
        **dict(sorted(spec.serving_env.items())),
        "MODEL_NAME": ref.model,
        "MODEL_VERSION": str(spec.version),
        "MODEL_ARTIFACT_URI": spec.artifact_uri,
        "MODEL_ARTIFACT_DIGEST": spec.artifact_digest,
    }
    for name, value in serving.items():
        merged[name] = {"name": name, "value": value}
    for secret in sorted(spec.secret_refs, key=lambda s: s.env_name):
        merged[secret.env_name] = {
            "name": secret.env_name,
            "valueFrom": {"secretKeyRef": {"name": secret.secret_name, "key": secret.secret_key}},
        }
    return list(merged.values())


def _resource_quantity(field: str, value: str) -> str:
    try:
        return canonical_quantity(value)
    except ValueError as exc:
        raise PermanentRuntimeError(f"resources.{field}: {exc}") from exc


def container_resources(spec: VersionSpec) -> dict[str, Any]:
    """Requests and limits in the canonical form the API server stores them in, so what we
    send is what we read back (a "0.5" would come back as "500m")."""
    res = spec.resources
    limits: dict[str, str] = {
        "cpu": _resource_quantity("cpu_limit", res.cpu_limit),
        "memory": _resource_quantity("memory_limit", res.memory_limit),
    }
    if res.gpu > 0:
        # Extended resources may only be set as limits; Kubernetes copies them to requests.
        limits[GPU_RESOURCE] = str(res.gpu)
    return {
        "requests": {
            "cpu": _resource_quantity("cpu_request", res.cpu_request),
            "memory": _resource_quantity("memory_request", res.memory_request),
        },
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
    the live count when an HPA owns scaling). The track and the release are on the
    Deployment's metadata only: changing either is a metadata write that restarts nothing."""
    name = version_object_name(ref, spec.version)
    selector = selector_labels(ref, spec.version)
    probe_port = PORT_NAME
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": options.container_port, "protocol": "TCP"}],
        "env": container_env(ref, spec),
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
        "metadata": _metadata(
            name, ref, version_labels(ref, spec.version, track), version_annotations(spec)
        ),
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
                "metadata": {
                    "labels": pod_labels(ref, spec.version),
                    "annotations": pod_annotations(spec),
                },
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
    """v1 Service of one version: the HTTPRoute's backendRefs point at these. It selects the
    version's pods by version, never by track (pods carry no track, see pod_labels)."""
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
