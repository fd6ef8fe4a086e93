"""Fixtures for the KubernetesRuntime tests: a `cluster` harness backed by the fake API server
by default, or by a real cluster when pytest runs with `-m k8s` and KUBECONFIG is set. The
harness's `make_ready` / `make_deadline_exceeded` set status on the fake and wait (bounded) on
a real cluster."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from deployments.runtime.base import DeploymentRef, Readiness
from deployments.runtime.kubernetes import KubernetesRuntime
from tests.k8s.fake_apiserver import FakeApiServer

REAL_WAIT_SECONDS = float(os.environ.get("MODELPLANE_K8S_WAIT_SECONDS", "180"))


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


class RealCluster:
    """A namespace of a real cluster. The image must answer HTTP 200 on port 8080 at the
    probe path (MODELPLANE_K8S_TEST_PROBE_PATH) as a non-root user."""

    real = True

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.probe_path = os.environ.get("MODELPLANE_K8S_TEST_PROBE_PATH", "/")

    def runtime(self, **options: Any) -> KubernetesRuntime:
        options.setdefault("readiness_path", self.probe_path)
        options.setdefault("liveness_path", self.probe_path)
        return KubernetesRuntime(self.api_client, **options)

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
    try:
        core.create_namespaced_secret(namespace, secret)
    except k8s.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    try:
        yield RealCluster(api_client, namespace)
    finally:
        if created:
            core.delete_namespace(namespace)


@pytest.fixture
def fake_server() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
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
def ref(cluster: Cluster, request: pytest.FixtureRequest) -> DeploymentRef:
    # A distinct name per test keeps real-cluster runs independent within one namespace.
    suffix = uuid.uuid4().hex[:5] if cluster.real else "t"
    return DeploymentRef(
        name=f"fraud-{suffix}",
        model="Fraud Detector",
        environment="production",
        namespace=cluster.namespace,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_invalid: the test provokes a 422 on purpose (fake API server only)"
    )
