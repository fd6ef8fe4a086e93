"""KubernetesRuntime: runs model versions as labelled Deployments, Services and HPAs and splits
traffic with a Gateway API HTTPRoute, through the official `kubernetes` client.

It never shells out (no kubectl), never reads a Secret's value (only `secretKeyRef`s), never
imports Django models, and never creates "another" object: every write is read, compare, then
create or replace by name with the live resourceVersion (optimistic concurrency). It never
writes what is already so: not an object equal to the live one (quantities compared by amount),
not a DELETE of an object its own labelled list shows absent."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from deployments.runtime import k8s_objects as objects
from deployments.runtime.base import (
    DeploymentRef,
    PermanentRuntimeError,
    Readiness,
    Track,
    TrafficSplit,
    TransientRuntimeError,
    VersionSpec,
    VersionStatus,
)

logger = logging.getLogger(__name__)

Manifest = dict[str, Any]

# Statuses worth another try: conflicts (re-read and re-apply), throttling, server trouble.
_RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class _Retry(Exception):
    """Internal: this attempt hit something transient; back off and go round again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _status_reason(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return f"{exc.status} {exc.reason}: {message or ''}".strip()


def _is_quantity(path: tuple[str, ...]) -> bool:
    """Container requests and limits, and HPA targets: the fields the API server stores in its
    own canonical form ("0.5" comes back as "500m")."""
    return (len(path) >= 3 and path[-3] == "resources" and path[-2] in ("requests", "limits")) or (
        len(path) >= 2 and path[-2] == "target" and path[-1] in ("averageValue", "value")
    )


def is_subset(desired: Any, live: Any, path: tuple[str, ...] = ()) -> bool:
    """True when every field we set has the same value live. Fields the API server or other
    controllers add (defaults, status, clusterIP) don't count as drift, and a quantity counts by
    its amount, not its spelling."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key], (*path, str(key)))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v, path) for d, v in zip(desired, live, strict=True))
        )
    if _is_quantity(path):
        return objects.same_quantity(desired, live)
    return bool(desired == live)


class _Resource:
    """Uniform get/list/create/replace/delete over one namespaced kind, returning raw dicts."""

    def __init__(
        self,
        kind: str,
        get: Callable[..., Any],
        list_: Callable[..., Any],
        create: Callable[..., Any],
        replace: Callable[..., Any],
        delete: Callable[..., Any],
    ) -> None:
        self.kind = kind
        self._get, self._list = get, list_
        self._create, self._replace, self._delete = create, replace, delete

    @staticmethod
    def _raw(response: Any) -> Manifest:
        return json.loads(response.data)

    def get(self, ns: str, name: str, timeout: float) -> Manifest:
        return self._raw(self._get(name, ns, _preload_content=False, _request_timeout=timeout))

    def list(self, ns: str, selector: str, timeout: float) -> list[Manifest]:
        raw = self._raw(
            self._list(
                ns, label_selector=selector, _preload_content=False, _request_timeout=timeout
            )
        )
        return list(raw.get("items") or [])

    def create(self, ns: str, body: Manifest, timeout: float) -> Manifest:
        return self._raw(self._create(ns, body, _preload_content=False, _request_timeout=timeout))

    def replace(self, ns: str, name: str, body: Manifest, timeout: float) -> Manifest:
        return self._raw(
            self._replace(name, ns, body, _preload_content=False, _request_timeout=timeout)
        )

    def delete(self, ns: str, name: str, timeout: float) -> None:
        self._delete(name, ns, _preload_content=False, _request_timeout=timeout)


API_CLASSES = ("AppsV1Api", "CoreV1Api", "AutoscalingV2Api", "CustomObjectsApi")


def preload_client() -> None:
    """Load the API classes the runtime uses (the client imports them, and the models they
    name, on first access): a worker calls this before it forks its pool processes."""
    for name in API_CLASSES:
        getattr(k8s, name)


class KubernetesRuntime:
    """base.Runtime on a Kubernetes cluster. See docs/kubernetes.md for objects and RBAC."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        gateway_name: str = "modelplane",
        gateway_namespace: str | None = None,
        gateway_section_name: str | None = None,
        progress_deadline_seconds: int = 600,
        service_port: int = 80,
        container_port: int = 8080,
        readiness_path: str = "/v2/health/ready",
        liveness_path: str = "/v2/health/live",
        entrypoint_url: str | None = None,
        version_url_template: str = "http://{service}.{namespace}.svc.cluster.local:{port}",
        request_timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = objects.ObjectOptions(
            gateway_name=gateway_name,
            gateway_namespace=gateway_namespace,
            gateway_section_name=gateway_section_name,
            service_port=service_port,
            container_port=container_port,
            readiness_path=readiness_path,
            liveness_path=liveness_path,
            progress_deadline_seconds=progress_deadline_seconds,
        )
        self.entrypoint_url = entrypoint_url
        # How the control plane reaches one version's Service for smoke tests: in-cluster DNS
        # by default; a control plane outside the cluster sets its ingress or proxy here.
        self.version_url_template = version_url_template
        self.request_timeout = request_timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        apps = k8s.AppsV1Api(api_client)
        core = k8s.CoreV1Api(api_client)
        autoscaling = k8s.AutoscalingV2Api(api_client)
        custom = k8s.CustomObjectsApi(api_client)
        self._deployments = _Resource(
            "Deployment",
            apps.read_namespaced_deployment,
            apps.list_namespaced_deployment,
            apps.create_namespaced_deployment,
            apps.replace_namespaced_deployment,
            apps.delete_namespaced_deployment,
        )
        self._services = _Resource(
            "Service",
            core.read_namespaced_service,
            core.list_namespaced_service,
            core.create_namespaced_service,
            core.replace_namespaced_service,
            core.delete_namespaced_service,
        )
        self._hpas = _Resource(
            "HorizontalPodAutoscaler",
            autoscaling.read_namespaced_horizontal_pod_autoscaler,
            autoscaling.list_namespaced_horizontal_pod_autoscaler,
            autoscaling.create_namespaced_horizontal_pod_autoscaler,
            autoscaling.replace_namespaced_horizontal_pod_autoscaler,
            autoscaling.delete_namespaced_horizontal_pod_autoscaler,
        )
        group, version, plural = objects.GATEWAY_GROUP, objects.GATEWAY_VERSION, "httproutes"
        self._routes = _Resource(
            "HTTPRoute",
            lambda name, ns, **kw: custom.get_namespaced_custom_object(
                group, version, ns, plural, name, **kw
            ),
            lambda ns, **kw: custom.list_namespaced_custom_object(group, version, ns, plural, **kw),
            lambda ns, body, **kw: custom.create_namespaced_custom_object(
                group, version, ns, plural, body, **kw
            ),
            lambda name, ns, body, **kw: custom.replace_namespaced_custom_object(
                group, version, ns, plural, name, body, **kw
            ),
            lambda name, ns, **kw: custom.delete_namespaced_custom_object(
                group, version, ns, plural, name, **kw
            ),
        )

    @classmethod
    def from_config(
        cls,
        kubeconfig_path: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        **options: Any,
    ) -> KubernetesRuntime:
        """Build from the pod's service account (in_cluster) or a kubeconfig file/context."""
        configuration = k8s.Configuration()
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig_path, context=context, client_configuration=configuration
            )
        # Retries are ours (bounded, with backoff, aware of resourceVersion); urllib3's own
        # would silently re-send writes.
        configuration.retries = False
        return cls(k8s.ApiClient(configuration), **options)

    # ----------------------------------------------------------------- retry machinery

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        return delay * (0.5 + random.random() / 2)  # jitter: don't retry in lockstep

    def _attempts(self, what: str, step: Callable[[], Any]) -> Any:
        """Run `step` until it returns, retrying transient failures with bounded backoff."""
        last = ""
        for attempt in range(self.max_attempts):
            try:
                return step()
            except _Retry as retry:
                last = retry.reason
            except ApiException as exc:
                if exc.status in _RETRYABLE_STATUS:
                    last = _status_reason(exc)
                else:
                    raise PermanentRuntimeError(f"{what}: {_status_reason(exc)}") from exc
            except _NETWORK_ERRORS as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < self.max_attempts:
                logger.warning("k8s %s: attempt %d failed (%s)", what, attempt + 1, last)
                self._sleep(self._backoff(attempt))
        raise TransientRuntimeError(f"{what}: gave up after {self.max_attempts} attempts: {last}")

    def _read(self, resource: _Resource, ns: str, name: str) -> Manifest | None:
        try:
            return resource.get(ns, name, self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _converge(
        self,
        resource: _Resource,
        ns: str,
        name: str,
        desire: Callable[[Manifest | None], Manifest],
    ) -> Manifest:
        """Read, then create (absent) or replace with the live resourceVersion (drifted), or do
        nothing (in sync). A 409 on either path means someone else wrote first: re-read."""

        def step() -> Manifest:
            live = self._read(resource, ns, name)
            desired = desire(live)
            if live is None:
                try:
                    return resource.create(ns, desired, self.request_timeout)
                except ApiException as exc:
                    if exc.status == 409:
                        raise _Retry(f"{resource.kind} {name} created concurrently") from exc
                    raise
            if is_subset(desired, live):
                return live
            body = _merge_for_replace(desired, live)
            try:
                return resource.replace(ns, name, body, self.request_timeout)
            except ApiException as exc:
                if exc.status == 409:
                    raise _Retry(f"{resource.kind} {name} changed since read") from exc
                raise

        return self._attempts(f"apply {resource.kind} {ns}/{name}", step)

    def _delete(self, resource: _Resource, ns: str, name: str) -> None:
        def step() -> None:
            try:
                resource.delete(ns, name, self.request_timeout)
            except ApiException as exc:
                if exc.status != 404:  # gone meanwhile: what we wanted
                    raise

        self._attempts(f"delete {resource.kind} {ns}/{name}", step)

    def _list(self, resource: _Resource, ns: str, selector: str) -> list[Manifest]:
        return self._attempts(
            f"list {resource.kind} {ns} {selector}",
            lambda: resource.list(ns, selector, self.request_timeout),
        )

    def _delete_version_objects(
        self, resources: tuple[_Resource, ...], ref: DeploymentRef, version: int
    ) -> None:
        """Delete this version's objects of these kinds that the labelled list shows: an absent
        object costs a list, never a DELETE answered 404."""
        name = objects.version_object_name(ref, version)
        selector = f"{objects.deployment_selector(ref)},{objects.LABEL_VERSION}={version}"
        for resource in resources:
            listed = self._list(resource, ref.namespace, selector)
            if any((item.get("metadata") or {}).get("name") == name for item in listed):
                self._delete(resource, ref.namespace, name)

    # ----------------------------------------------------------------- Runtime

    def apply_version(self, ref: DeploymentRef, spec: VersionSpec, track: Track) -> None:
        ns, name = ref.namespace, objects.version_object_name(ref, spec.version)
        # Service first: when the Deployment becomes ready its endpoints exist at once.
        self._converge(
            self._services,
            ns,
            name,
            lambda _live: objects.service_manifest(ref, spec, track, self.options),
        )

        def desired_deployment(live: Manifest | None) -> Manifest:
            replicas = None
            if spec.autoscaling is not None:
                # The HPA owns the count once running: re-applying must not reset it.
                live_replicas = ((live or {}).get("spec") or {}).get("replicas")
                replicas = (
                    live_replicas if live_replicas is not None else spec.autoscaling.min_replicas
                )
            return objects.deployment_manifest(ref, spec, track, self.options, replicas=replicas)

        self._converge(self._deployments, ns, name, desired_deployment)
        hpa = objects.hpa_manifest(ref, spec, track, self.options)
        if hpa is None:
            # Autoscaling switched off, or never on: the list says which.
            self._delete_version_objects((self._hpas,), ref, spec.version)
        else:
            self._converge(self._hpas, ns, name, lambda _live: hpa)

    def version_status(self, ref: DeploymentRef, version: int) -> VersionStatus:
        ns, name = ref.namespace, objects.version_object_name(ref, version)
        live = self._attempts(
            f"read Deployment {ns}/{name}", lambda: self._read(self._deployments, ns, name)
        )
        if live is None:
            return VersionStatus(version=version, readiness=Readiness.ABSENT, message="not found")
        return deployment_readiness(version, live)

    def scale_version(self, ref: DeploymentRef, version: int, replicas: int) -> None:
        if replicas < 0:
            raise PermanentRuntimeError(f"replicas must be >= 0, got {replicas}")
        ns, name = ref.namespace, objects.version_object_name(ref, version)

        def desired(live: Manifest | None) -> Manifest:
            if live is None:
                raise PermanentRuntimeError(f"Deployment {ns}/{name} does not exist")
            return {**live, "spec": {**live["spec"], "replicas": replicas}}

        self._converge(self._deployments, ns, name, desired)

    def remove_version(self, ref: DeploymentRef, version: int) -> None:
        # The HPA first, so it never scales a Deployment that is going away.
        self._delete_version_objects((self._hpas, self._deployments, self._services), ref, version)

    def list_versions(self, ref: DeploymentRef) -> list[int]:
        selector = objects.deployment_selector(ref)
        versions: set[int] = set()
        for resource in (self._deployments, self._services, self._hpas):
            for item in self._list(resource, ref.namespace, selector):
                value = ((item.get("metadata") or {}).get("labels") or {}).get(
                    objects.LABEL_VERSION, ""
                )
                if value.isdigit():
                    versions.add(int(value))
        return sorted(versions)

    def set_traffic(self, ref: DeploymentRef, split: TrafficSplit) -> None:
        route = objects.httproute_manifest(ref, split, self.options)
        self._converge(self._routes, ref.namespace, ref.name, lambda _live: route)

    def get_traffic(self, ref: DeploymentRef) -> TrafficSplit | None:
        live = self._attempts(
            f"read HTTPRoute {ref.namespace}/{ref.name}",
            lambda: self._read(self._routes, ref.namespace, ref.name),
        )
        return None if live is None else objects.traffic_from_httproute(ref, live)

    def traffic_applied(self, ref: DeploymentRef, split: TrafficSplit) -> bool:
        """The HTTPRoute holds this split and every parent Gateway reports it Accepted at the
        route's current generation (Gateway API route status)."""
        live = self._attempts(
            f"read HTTPRoute {ref.namespace}/{ref.name}",
            lambda: self._read(self._routes, ref.namespace, ref.name),
        )
        if live is None or objects.traffic_from_httproute(ref, live) != split:
            return False
        generation = (live.get("metadata") or {}).get("generation", 0)
        parents = (live.get("status") or {}).get("parents") or []
        if not parents:
            return False  # no gateway has picked the route up yet
        for parent in parents:
            accepted = [
                c
                for c in parent.get("conditions") or []
                if c.get("type") == "Accepted"
                and c.get("status") == "True"
                and int(c.get("observedGeneration", 0)) >= int(generation)
            ]
            if not accepted:
                return False
        return True

    def endpoint(self, ref: DeploymentRef, version: int | None = None) -> str | None:
        """In-cluster URLs only: a control plane outside the cluster cannot reach them (see
        docs/kubernetes.md); the routed entry point is the configured `entrypoint_url`."""
        if version is None:
            return self.entrypoint_url
        ns, name = ref.namespace, objects.version_object_name(ref, version)
        live = self._attempts(
            f"read Service {ns}/{name}", lambda: self._read(self._services, ns, name)
        )
        if live is None:
            return None
        return self.version_url_template.format(
            service=name, namespace=ns, port=self.options.service_port, version=version
        )


def _merge_for_replace(desired: Manifest, live: Manifest) -> Manifest:
    """The PUT body: our object, plus what others own on the live one (labels and annotations
    we don't set, allocated Service IPs), with the live resourceVersion as the precondition."""
    body = json.loads(json.dumps(desired))
    meta = body.setdefault("metadata", {})
    live_meta = live.get("metadata") or {}
    meta["resourceVersion"] = live_meta.get("resourceVersion")
    for key in ("labels", "annotations"):
        merged = {**(live_meta.get(key) or {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged
    if body.get("kind") == "Service":
        live_spec = live.get("spec") or {}
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if key in live_spec and key not in body["spec"]:
                body["spec"][key] = live_spec[key]
    return body


def deployment_readiness(version: int, deployment: Mapping[str, Any]) -> VersionStatus:
    """Readiness as the deployment controller reports it: READY only for the current
    generation with every desired replica updated and available (traffic only after Ready)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int(meta.get("generation") or 0)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    current = observed >= generation

    def result(readiness: Readiness, message: str) -> VersionStatus:
        return VersionStatus(
            version=version,
            readiness=readiness,
            desired_replicas=desired,
            available_replicas=available,
            message=message,
        )

    progressing = conditions.get("Progressing") or {}
    if current and progressing.get("reason") == "ProgressDeadlineExceeded":
        return result(Readiness.FAILED, progressing.get("message") or "progress deadline exceeded")
    if not current:
        return result(Readiness.PROGRESSING, f"generation {generation} not observed yet")
    if desired == 0:
        return result(Readiness.PROGRESSING, "scaled to zero")
    available_cond = conditions.get("Available") or {}
    if updated == desired and available == desired and available_cond.get("status") == "True":
        return result(Readiness.READY, f"{available}/{desired} available")
    return result(Readiness.PROGRESSING, f"{updated} updated, {available}/{desired} available")
