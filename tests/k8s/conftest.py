"""Fixtures for the KubernetesRuntime tests: a `cluster` harness backed by the fake API server
by default, or by a real cluster when pytest runs with `-m k8s` and KUBECONFIG is set. The
harness's `make_ready` / `make_deadline_exceeded` set status on the fake and wait (bounded) on
a real cluster; `accept_route` / `reject_route` play the Gateway's controller on both; `writes`
are the runtime's POST, PUT, PATCH and DELETE requests, as the fake saw them or as the client
sent them to the real cluster."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from deployments.runtime import k8s_objects as objects
from deployments.runtime.base import DeploymentRef, Readiness
from deployments.runtime.kubernetes import KubernetesRuntime
from tests.k8s.fake_apiserver import FakeApiServer, route_status

REAL_WAIT_SECONDS = float(os.environ.get("MODELPLANE_K8S_WAIT_SECONDS", "180"))
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Cluster(Protocol):
    real: bool
    namespace: str
    api_client: k8s.ApiClient

    def runtime(self, **options: Any) -> KubernetesRuntime: ...
    def make_ready(self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int) -> None: ...
    def make_deadline_exceeded(
        self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int
    ) -> None: ...
    def image(self, ok: bool = True) -> str: ...
    def writes(self) -> list[str]: ...
    def forget_writes(self) -> None: ...
    def accept_route(self, ref: DeploymentRef) -> None: ...
    def reject_route(self, ref: DeploymentRef) -> None: ...


class FakeCluster:
    real = False
    namespace = "ml"

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.api_client = server.api_client()
        self.sleeps: list[float] = []

    def runtime(self, **options: Any) -> KubernetesRuntime:
        options.setdefault("sleep", self.sleeps.append)
        options.setdefault("request_timeout", 2.0)
        return KubernetesRuntime(self.api_client, **options)

    def make_ready(self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int) -> None:
        self.server.mark_deployment_ready(ref.namespace, f"{ref.name}-v{version}")

    def make_deadline_exceeded(
        self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int
    ) -> None:
        self.server.mark_progress_deadline_exceeded(ref.namespace, f"{ref.name}-v{version}")

    def image(self, ok: bool = True) -> str:
        return "registry.example/serving@sha256:" + ("a" if ok else "b") * 64

    def writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.server.requests if r.method in WRITE_METHODS]

    def forget_writes(self) -> None:
        self.server.clear_log()

    def accept_route(self, ref: DeploymentRef) -> None:
        self.server.gateway.accept(ref.namespace, ref.name)

    def reject_route(self, ref: DeploymentRef) -> None:
        self.server.gateway.reject(ref.namespace, ref.name)


class RealCluster:
    """A namespace of a real cluster. The image must answer HTTP 200 on port 8080 at the
    probe path (MODELPLANE_K8S_TEST_PROBE_PATH) as a non-root user. The runtime gets a client
    that records what it sends; the harness's own requests go through another."""

    real = True

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.probe_path = os.environ.get("MODELPLANE_K8S_TEST_PROBE_PATH", "/")
        self._sent: list[str] = []
        self._runtime_client = k8s.ApiClient(api_client.configuration)
        send = self._runtime_client.rest_client.request

        def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self._sent.append(f"{method.upper()} {urlsplit(url).path}")
            return send(method, url, *args, **kwargs)

        self._runtime_client.rest_client.request = recording  # type: ignore[method-assign]
        self._has_nodes: bool | None = None

    def runtime(self, **options: Any) -> KubernetesRuntime:
        options.setdefault("readiness_path", self.probe_path)
        options.setdefault("liveness_path", self.probe_path)
        return KubernetesRuntime(self._runtime_client, **options)

    def writes(self) -> list[str]:
        return [w for w in self._sent if w.split(" ", 1)[0] in WRITE_METHODS]

    def forget_writes(self) -> None:
        self._sent.clear()

    def has_nodes(self) -> bool:
        """Whether any node could run a pod; a cluster that will not say is taken to have one."""
        if self._has_nodes is None:
            try:
                nodes = k8s.CoreV1Api(self.api_client).list_node(limit=1)
                self._has_nodes = bool(nodes.items)
            except k8s.exceptions.ApiException as exc:
                if exc.status != 403:
                    raise
                self._has_nodes = True
        return self._has_nodes

    def accept_route(self, ref: DeploymentRef) -> None:
        self._route_status(ref, "True", "Accepted", "Route is accepted")

    def reject_route(self, ref: DeploymentRef) -> None:
        self._route_status(ref, "False", "NotAllowedByListeners", "Rejected by the test")

    def _route_status(self, ref: DeploymentRef, accepted: str, reason: str, message: str) -> None:
        """Write the status a Gateway controller would, through the status subresource. The
        route's Gateway does not exist in the test namespace, so no real controller claims it."""
        custom = k8s.CustomObjectsApi(self.api_client)
        where = (objects.GATEWAY_GROUP, objects.GATEWAY_VERSION, ref.namespace, "httproutes")
        route = json.loads(
            custom.get_namespaced_custom_object(*where, ref.name, _preload_content=False).data
        )
        route["status"] = route_status(route, accepted, reason, message)
        custom.replace_namespaced_custom_object_status(*where, ref.name, route)

    def remove_objects_of(self, ref: DeploymentRef) -> None:
        """Delete what a scenario left: every object the runtime labelled with a deployment name
        starting with this ref's (scenarios derive other refs from it)."""
        apps, core = k8s.AppsV1Api(self.api_client), k8s.CoreV1Api(self.api_client)
        autoscaling = k8s.AutoscalingV2Api(self.api_client)
        custom = k8s.CustomObjectsApi(self.api_client)
        route = (objects.GATEWAY_GROUP, objects.GATEWAY_VERSION, self.namespace, "httproutes")
        kinds = [
            (apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
            (core.list_namespaced_service, core.delete_namespaced_service),
            (
                autoscaling.list_namespaced_horizontal_pod_autoscaler,
                autoscaling.delete_namespaced_horizontal_pod_autoscaler,
            ),
            (
                lambda ns, **kw: custom.list_namespaced_custom_object(*route, **kw),
                lambda name, ns: custom.delete_namespaced_custom_object(*route, name),
            ),
        ]
        selector = f"{objects.LABEL_MANAGED_BY}={objects.MANAGED_BY}"
        for list_, delete in kinds:
            listed = json.loads(
                list_(self.namespace, label_selector=selector, _preload_content=False).data
            )
            for item in listed.get("items") or []:
                meta = item["metadata"]
                if (meta.get("labels") or {}).get(objects.LABEL_NAME, "").startswith(ref.name):
                    try:
                        delete(meta["name"], self.namespace)
                    except k8s.exceptions.ApiException as exc:
                        if exc.status != 404:
                            raise

    def _wait_for(
        self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int, want: Readiness
    ) -> None:
        deadline = time.monotonic() + REAL_WAIT_SECONDS
        while time.monotonic() < deadline:
            if runtime.version_status(ref, version).readiness is want:
                return
            time.sleep(2)
        pytest.fail(f"{ref.name}-v{version} not {want} after {REAL_WAIT_SECONDS}s")

    def make_ready(self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int) -> None:
        if not self.has_nodes():
            pytest.skip(
                "the cluster has no nodes (no kubelet): no pod can start, so no version can "
                "become ready"
            )
        self._wait_for(runtime, ref, version, Readiness.READY)

    def make_deadline_exceeded(
        self, runtime: KubernetesRuntime, ref: DeploymentRef, version: int
    ) -> None:
        self._wait_for(runtime, ref, version, Readiness.FAILED)

    def image(self, ok: bool = True) -> str:
        if ok:
            return os.environ.get(
                "MODELPLANE_K8S_TEST_IMAGE", "nginxinc/nginx-unprivileged:1.27-alpine"
            )
        return "registry.invalid/modelplane/never-pulls:0"


def _real_cluster_requested(config: pytest.Config) -> bool:
    # `-m k8s` (or an expression selecting it) asks for the cluster; `-m "not k8s"` does not.
    return re.search(r"(?<!not )\bk8s\b", config.option.markexpr or "") is not None


@pytest.fixture(scope="session")
def _real_cluster(request: pytest.FixtureRequest) -> Iterator[RealCluster | None]:
    if not _real_cluster_requested(request.config):
        yield None
        return
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("-m k8s runs against a real cluster: set KUBECONFIG (see docs/kubernetes.md)")
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        context=os.environ.get("MODELPLANE_K8S_CONTEXT"), client_configuration=configuration
    )
    api_client = k8s.ApiClient(configuration)
    namespace = os.environ.get("MODELPLANE_K8S_TEST_NAMESPACE")
    created = False
    core = k8s.CoreV1Api(api_client)
    if not namespace:
        namespace = f"modelplane-test-{uuid.uuid4().hex[:8]}"
        core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        created = True
    # The scenarios reference this Secret by key; pods can't start until it exists.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "fraud-db"},
        "stringData": {"password": uuid.uuid4().hex},
    }
    secret_created = False
    try:
        core.create_namespaced_secret(namespace, secret)
        secret_created = True
    except k8s.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    try:
        yield RealCluster(api_client, namespace)
    finally:
        # Each scenario removes its own objects (the `ref` fixture); this removes the rest.
        if created:
            core.delete_namespace(namespace)
        elif secret_created:
            core.delete_namespaced_secret("fraud-db", namespace)


@pytest.fixture
def fake_server() -> Iterator[FakeApiServer]:
    # As on a cluster: a route is Accepted only when the test's Gateway controller says so.
    server = FakeApiServer(auto_accept_routes=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, _real_cluster: RealCluster | None) -> Iterator[Cluster]:
    if _real_cluster is not None:
        yield _real_cluster
        return
    server = request.getfixturevalue("fake_server")
    yield FakeCluster(server)
    # Every object the runtime wrote must have passed the schemas, unless the test provoked
    # a rejection on purpose and said so.
    if not request.node.get_closest_marker("expect_invalid"):
        assert server.invalid_writes == [], [str(e) for e in server.invalid_writes]


@pytest.fixture
def ref(cluster: Cluster) -> Iterator[DeploymentRef]:
    # A distinct name per test keeps real-cluster runs independent within one namespace.
    suffix = uuid.uuid4().hex[:5] if cluster.real else "t"
    ref = DeploymentRef(
        name=f"fraud-{suffix}",
        model="Fraud Detector",
        environment="production",
        namespace=cluster.namespace,
    )
    yield ref
    if isinstance(cluster, RealCluster):
        cluster.remove_objects_of(ref)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_invalid: the test provokes a 422 on purpose (fake API server only)"
    )
