"""The real-cluster harness of `make test-k8s` (conftest.RealCluster), run here against the fake
API server so its own code is tried before it meets a cluster: it counts the runtime's writes,
plays the Gateway controller through the status subresource, removes what a scenario left, and
skips readiness on a cluster without nodes."""

from __future__ import annotations

import pytest

from deployments.runtime.base import DeploymentRef, Track, TrafficSplit
from tests.k8s.conftest import RealCluster
from tests.k8s.fake_apiserver import FakeApiServer
from tests.k8s.test_kubernetes_runtime import make_spec

REF = DeploymentRef(name="fraud-ab12c", model="Fraud Detector", environment="prod", namespace="ml")


@pytest.fixture
def real(fake_server: FakeApiServer) -> RealCluster:
    return RealCluster(fake_server.api_client(), "ml")


def test_it_counts_the_runtimes_writes_only(real: RealCluster) -> None:
    runtime = real.runtime()
    runtime.apply_version(REF, make_spec(real, 1), Track.STABLE)
    assert [w.split(" ")[0] for w in real.writes()] == ["POST", "POST"]
    real.forget_writes()
    runtime.set_traffic(REF, TrafficSplit.all_to(1))
    real.accept_route(REF)  # the harness's own write is not the runtime's
    assert real.writes() == ["POST /apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes"]


def test_it_plays_the_gateway_controller_through_the_status_subresource(
    real: RealCluster, fake_server: FakeApiServer
) -> None:
    runtime = real.runtime()
    split = TrafficSplit.all_to(1)
    runtime.set_traffic(REF, split)
    assert not runtime.traffic_applied(REF, split)
    real.accept_route(REF)
    assert runtime.traffic_applied(REF, split)
    real.reject_route(REF)
    assert not runtime.traffic_applied(REF, split)
    assert fake_server.invalid_writes == []


def test_it_removes_what_a_scenario_left(real: RealCluster, fake_server: FakeApiServer) -> None:
    runtime = real.runtime()
    other = DeploymentRef(name="someone-else", model="m", environment="prod", namespace="ml")
    runtime.apply_version(REF, make_spec(real, 1), Track.STABLE)
    runtime.apply_version(
        DeploymentRef(name=f"{REF.name}x", model="m", environment="prod", namespace="ml"),
        make_spec(real, 2),
        Track.STABLE,
    )
    runtime.apply_version(other, make_spec(real, 3), Track.STABLE)
    runtime.set_traffic(REF, TrafficSplit.all_to(1))
    real.remove_objects_of(REF)
    left = [o["metadata"]["name"] for p in ("deployments", "services") for o in fake_server.all(p)]
    assert left == ["someone-else-v3", "someone-else-v3"]
    assert fake_server.all("httproutes") == []


def test_readiness_is_skipped_on_a_cluster_without_nodes(real: RealCluster) -> None:
    runtime = real.runtime()
    runtime.apply_version(REF, make_spec(real, 1), Track.STABLE)
    with pytest.raises(pytest.skip.Exception, match="no nodes"):
        real.make_ready(runtime, REF, 1)
