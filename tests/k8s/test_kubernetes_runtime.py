"""KubernetesRuntime scenarios through the official client. Tests marked `k8s` run against
the fake API server by default and against a real cluster with `-m k8s` and KUBECONFIG; the
fault-injection tests need the fake and are not marked."""

from __future__ import annotations

import json

import pytest

from deployments.runtime import k8s_objects as objects
from deployments.runtime.base import (
    Autoscaling,
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
    Readiness,
    Resources,
    Runtime,
    SecretRef,
    Track,
    TrafficSplit,
    TransientRuntimeError,
    VersionSpec,
)
from deployments.runtime.kubernetes import KubernetesRuntime, is_subset
from tests.k8s.conftest import Cluster, FakeCluster

SECRET_NAME = "fraud-db"


def make_spec(cluster: Cluster, version: int = 1, **overrides) -> VersionSpec:
    values = {
        "version": version,
        "artifact_uri": f"s3://models/fraud/{version}/model.skops",
        "artifact_digest": "sha256:" + f"{version:x}" * 64,
        "image": cluster.image(),
        "replicas": 1,
        "resources": Resources(
            cpu_request="50m", cpu_limit="200m", memory_request="32Mi", memory_limit="128Mi"
        ),
        "env": {"LOG_LEVEL": "info"},
        "secret_refs": (SecretRef("DB_PASSWORD", SECRET_NAME, "password"),),
        "release_id": 7,
        "serving_env": {"MAX_BATCH": "8"},
    }
    values.update(overrides)
    return VersionSpec(**values)


def fake_only(cluster: Cluster) -> FakeCluster:
    if cluster.real:
        pytest.skip("needs the fake API server")
    assert isinstance(cluster, FakeCluster)
    return cluster


@pytest.mark.k8s
def test_it_satisfies_the_runtime_protocol(cluster: Cluster) -> None:
    assert isinstance(cluster.runtime(), Runtime)


@pytest.mark.k8s
def test_it_applies_a_version_as_labelled_objects(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 3), Track.CANARY)
    api = runtime._deployments.get(ref.namespace, f"{ref.name}-v3", 5)
    labels = api["metadata"]["labels"]
    assert labels[objects.LABEL_NAME] == ref.name
    assert labels[objects.LABEL_MANAGED_BY] == "modelplane"
    assert labels[objects.LABEL_VERSION] == "3"
    assert labels[objects.LABEL_TRACK] == "canary"
    assert labels[objects.LABEL_ENVIRONMENT] == "production"
    assert api["metadata"]["annotations"][objects.ANNOTATION_RELEASE] == "7"
    assert api["metadata"]["annotations"][objects.ANNOTATION_DIGEST].startswith("sha256:")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == runtime.options.readiness_path
    assert container["livenessProbe"]["httpGet"]["path"] == runtime.options.liveness_path
    assert container["resources"]["requests"]["cpu"] == "50m"
    env = {e["name"]: e for e in container["env"]}
    assert env["MODEL_VERSION"]["value"] == "3"
    assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": SECRET_NAME,
        "key": "password",
    }
    assert api["spec"]["progressDeadlineSeconds"] == 600
    service = runtime._services.get(ref.namespace, f"{ref.name}-v3", 5)
    assert service["spec"]["selector"] == objects.selector_labels(ref, 3)


def test_it_requests_gpus_as_limits_and_never_sends_a_secret_value(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    runtime.apply_version(ref, make_spec(fake, 1, resources=Resources(gpu=2)), Track.STABLE)
    deployment = fake.server.get("deployments", ref.namespace, f"{ref.name}-v1")
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"
    # Only references travel: nothing in any request body carries a "value" for the secret.
    for logged in fake.server.requests:
        for env in _envs(logged.body):
            if env["name"] == "DB_PASSWORD":
                assert "value" not in env


def _envs(body) -> list[dict]:
    if not isinstance(body, dict):
        return []
    containers = (((body.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    return [e for c in containers for e in c.get("env") or []]


# "Applies nothing" means the runtime sends no write (POST, PUT, PATCH, DELETE), counted where
# the requests are seen. A resourceVersion is no measure: on a cluster, controllers write status
# (and so bump it) whatever the runtime does.


@pytest.mark.k8s
@pytest.mark.parametrize("autoscaling", [None, Autoscaling(min_replicas=1, max_replicas=2)])
def test_applying_twice_sends_no_write(
    cluster: Cluster, ref: DeploymentRef, autoscaling: Autoscaling | None
) -> None:
    runtime = cluster.runtime()
    spec = make_spec(cluster, 1, autoscaling=autoscaling)
    runtime.apply_version(ref, spec, Track.STABLE)
    cluster.forget_writes()
    runtime.apply_version(ref, spec, Track.STABLE)
    assert cluster.writes() == []
    assert runtime.list_versions(ref) == [1]


@pytest.mark.k8s
def test_non_canonical_quantities_are_written_once(cluster: Cluster, ref: DeploymentRef) -> None:
    # Each form the configuration check used to pass through as written; the API server stores
    # them as 500m, 1, 512Mi and 1Gi (tests/k8s/data/real-apiserver-1.36/quantities.json).
    resources = Resources(
        cpu_request="0.5", cpu_limit="1000m", memory_request="0.5Gi", memory_limit="1024Mi"
    )
    runtime = cluster.runtime()
    spec = make_spec(cluster, 1, resources=resources)
    runtime.apply_version(ref, spec, Track.STABLE)
    cluster.forget_writes()
    runtime.apply_version(ref, spec, Track.STABLE)
    assert cluster.writes() == []
    live = runtime._deployments.get(ref.namespace, f"{ref.name}-v1", 5)
    assert live["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_a_quantity_spelled_otherwise_live_is_no_drift() -> None:
    desired = {"resources": {"requests": {"cpu": "0.5"}, "limits": {"memory": "1024Mi"}}}
    assert is_subset(
        desired, {"resources": {"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}}}
    )
    assert not is_subset(
        desired, {"resources": {"requests": {"cpu": "501m"}, "limits": {"memory": "1Gi"}}}
    )
    # Only quantities count by amount: any other text is compared as text.
    assert not is_subset({"env": [{"value": "0.5"}]}, {"env": [{"value": "500m"}]})


@pytest.mark.k8s
def test_an_absent_hpa_is_never_deleted(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    assert [w for w in cluster.writes() if w.startswith("DELETE")] == []


@pytest.mark.k8s
def test_removing_an_absent_version_deletes_nothing(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    cluster.forget_writes()
    runtime.remove_version(ref, 2)
    assert cluster.writes() == []
    assert runtime.list_versions(ref) == [1]


@pytest.mark.k8s
def test_a_track_change_relabels_without_restarting_pods(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    runtime = cluster.runtime()
    spec = make_spec(cluster, 2, autoscaling=Autoscaling(min_replicas=1, max_replicas=2))
    runtime.apply_version(ref, spec, Track.CANARY)
    name = f"{ref.name}-v2"
    before = runtime._deployments.get(ref.namespace, name, 5)
    runtime.apply_version(ref, spec, Track.STABLE)  # the canary is promoted
    after = runtime._deployments.get(ref.namespace, name, 5)
    for resource in (runtime._deployments, runtime._services, runtime._hpas):
        live = resource.get(ref.namespace, name, 5)
        assert live["metadata"]["labels"][objects.LABEL_TRACK] == "stable"
    # The pod template, and so the pods, did not change: no new generation, nothing rolls.
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert objects.LABEL_TRACK not in after["spec"]["template"]["metadata"]["labels"]
    assert runtime.list_versions(ref) == [2]


def test_a_ready_version_stays_ready_when_promoted(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    runtime.apply_version(ref, make_spec(fake, 2), Track.CANARY)
    fake.make_ready(runtime, ref, 2)
    runtime.apply_version(ref, make_spec(fake, 2), Track.STABLE)
    assert runtime.version_status(ref, 2).readiness is Readiness.READY


@pytest.mark.k8s
def test_readiness_goes_from_progressing_to_ready(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    if not cluster.real:
        assert runtime.version_status(ref, 1).readiness is Readiness.PROGRESSING
    cluster.make_ready(runtime, ref, 1)
    status = runtime.version_status(ref, 1)
    assert status.readiness is Readiness.READY
    assert status.ready and status.available_replicas == status.desired_replicas == 1


def test_a_new_generation_is_not_ready_until_observed(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    fake.make_ready(runtime, ref, 1)
    runtime.apply_version(ref, make_spec(fake, 1, image=fake.image(ok=False)), Track.STABLE)
    assert runtime.version_status(ref, 1).readiness is Readiness.PROGRESSING


@pytest.mark.k8s
def test_a_progress_deadline_means_failed(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime(progress_deadline_seconds=15)
    runtime.apply_version(ref, make_spec(cluster, 1, image=cluster.image(ok=False)), Track.CANARY)
    cluster.make_deadline_exceeded(runtime, ref, 1)
    status = runtime.version_status(ref, 1)
    assert status.readiness is Readiness.FAILED
    assert not status.ready


@pytest.mark.k8s
def test_an_unknown_version_is_absent(cluster: Cluster, ref: DeploymentRef) -> None:
    assert cluster.runtime().version_status(ref, 99).readiness is Readiness.ABSENT


@pytest.mark.k8s
def test_traffic_weights_and_mirror_round_trip(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    assert runtime.get_traffic(ref) is None
    for version in (1, 2):
        runtime.apply_version(ref, make_spec(cluster, version), Track.STABLE)
    split = TrafficSplit({1: 80, 2: 20}, mirror=Mirror(version=2, percent=30))
    runtime.set_traffic(ref, split)
    assert runtime.get_traffic(ref) == split
    runtime.set_traffic(ref, TrafficSplit.all_to(2))
    assert runtime.get_traffic(ref) == TrafficSplit({2: 100})
    route = runtime._routes.get(ref.namespace, ref.name, 5)
    assert route["spec"]["parentRefs"][0]["name"] == runtime.options.gateway_name
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == [f"{ref.name}-v2"]


@pytest.mark.k8s
def test_remove_is_idempotent(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    spec = make_spec(cluster, 4, autoscaling=Autoscaling())
    runtime.apply_version(ref, spec, Track.SHADOW)
    cluster.forget_writes()
    runtime.remove_version(ref, 4)
    assert [w.split(" ")[0] for w in cluster.writes()] == ["DELETE"] * 3
    cluster.forget_writes()
    runtime.remove_version(ref, 4)
    assert cluster.writes() == []
    assert runtime.version_status(ref, 4).readiness is Readiness.ABSENT
    assert runtime.list_versions(ref) == []


@pytest.mark.k8s
def test_list_versions_selects_by_labels(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    other = DeploymentRef(
        name=f"{ref.name}x", model="Other", environment="production", namespace=ref.namespace
    )
    for version in (3, 1):
        runtime.apply_version(ref, make_spec(cluster, version), Track.STABLE)
    runtime.apply_version(other, make_spec(cluster, 7), Track.STABLE)
    assert runtime.list_versions(ref) == [1, 3]
    assert runtime.list_versions(other) == [7]


@pytest.mark.k8s
def test_scale_to_zero_keeps_the_objects(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    runtime.scale_version(ref, 1, 0)
    assert runtime._deployments.get(ref.namespace, f"{ref.name}-v1", 5)["spec"]["replicas"] == 0
    assert runtime.list_versions(ref) == [1]
    with pytest.raises(PermanentRuntimeError):
        runtime.scale_version(ref, 9, 1)


def test_an_hpa_keeps_its_replica_count_across_applies(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    spec = make_spec(fake, 1, autoscaling=Autoscaling(min_replicas=2, max_replicas=5))
    runtime.apply_version(ref, spec, Track.STABLE)
    runtime.scale_version(ref, 1, 4)  # what the HPA controller would have done
    runtime.apply_version(ref, spec, Track.STABLE)
    assert fake.server.get("deployments", ref.namespace, f"{ref.name}-v1")["spec"]["replicas"] == 4
    hpa = fake.server.get("horizontalpodautoscalers", ref.namespace, f"{ref.name}-v1")
    assert hpa["spec"]["maxReplicas"] == 5
    fake.server.clear_log()
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)  # autoscaling switched off
    assert fake.server.get("horizontalpodautoscalers", ref.namespace, f"{ref.name}-v1") is None
    assert [w for w in fake.writes() if w.startswith("DELETE")] == [
        f"DELETE /apis/autoscaling/v2/namespaces/{ref.namespace}/horizontalpodautoscalers/"
        f"{ref.name}-v1"
    ]


def test_a_stale_write_is_retried_and_converges(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    runtime.apply_version(ref, make_spec(fake, 1), Track.CANARY)
    name = f"{ref.name}-v1"
    # Someone else writes between our read and our PUT: the first PUT carries a stale version.
    original_get = runtime._deployments.get
    raced = []

    def get_then_race(ns, obj_name, timeout):
        live = original_get(ns, obj_name, timeout)
        if not raced:
            raced.append(True)
            live_copy = json.loads(json.dumps(live))
            live_copy["metadata"]["labels"]["team"] = "risk"
            runtime._deployments.replace(ns, obj_name, live_copy, timeout)
        return live

    runtime._deployments.get = get_then_race
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    puts = [r.status for r in fake.server.requests if r.method == "PUT" and name in r.path]
    assert 409 in puts and puts[-1] == 200
    live = fake.server.get("deployments", ref.namespace, name)
    assert live["metadata"]["labels"][objects.LABEL_TRACK] == "stable"
    assert live["metadata"]["labels"]["team"] == "risk"  # the other writer's label survives


def test_injected_conflicts_are_retried(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    runtime.apply_version(ref, make_spec(fake, 1), Track.CANARY)
    fake.server.fail_next("PUT", r"/deployments/", status=409, times=2)
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    live = fake.server.get("deployments", ref.namespace, f"{ref.name}-v1")
    assert live["metadata"]["labels"][objects.LABEL_TRACK] == "stable"
    assert len(fake.sleeps) == 2


def test_server_errors_are_retried_then_reported_as_transient(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime(max_attempts=3)
    fake.server.fail_next("POST", r"/services$", status=500, times=3)
    with pytest.raises(TransientRuntimeError, match="3 attempts"):
        runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    assert len(fake.sleeps) == 2
    assert fake.sleeps[1] > 0


def test_a_few_server_errors_are_absorbed(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    fake.server.fail_next("POST", r"/deployments$", status=503, times=2)
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    assert len(fake.server.all("deployments")) == 1


def test_a_timed_out_create_that_landed_converges(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime(request_timeout=0.3)
    fake.server.delay_next("POST", r"/deployments$", seconds=0.6)
    runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    assert len(fake.server.all("deployments")) == 1
    assert runtime.version_status(ref, 1).readiness is Readiness.PROGRESSING


def test_a_connection_failure_is_transient(ref: DeploymentRef) -> None:
    from kubernetes import client as k8s

    configuration = k8s.Configuration(host="http://127.0.0.1:9")
    configuration.retries = False
    runtime = KubernetesRuntime(
        k8s.ApiClient(configuration), max_attempts=2, sleep=lambda _s: None, request_timeout=1
    )
    with pytest.raises(TransientRuntimeError):
        runtime.version_status(ref, 1)


def test_a_rejected_object_is_permanent(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    fake.server.fail_next("POST", r"/deployments$", status=422)
    with pytest.raises(PermanentRuntimeError, match="422"):
        runtime.apply_version(ref, make_spec(fake, 1), Track.STABLE)
    fake.server.fail_next("GET", r"/services/", status=403)
    with pytest.raises(PermanentRuntimeError, match="403"):
        runtime.endpoint(ref, 1)


@pytest.mark.expect_invalid
def test_an_invalid_route_is_answered_422_and_permanent(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime(gateway_namespace="Not_A_Namespace")
    with pytest.raises(PermanentRuntimeError, match="422"):
        runtime.set_traffic(ref, TrafficSplit.all_to(1))
    assert [e.kind for e in fake.server.invalid_writes] == ["HTTPRoute"]
    assert fake.server.all("httproutes") == []


@pytest.mark.expect_invalid
def test_an_invalid_name_is_answered_422(cluster: Cluster) -> None:
    fake = fake_only(cluster)
    bad = DeploymentRef(name="fraud_v", model="m", environment="e", namespace=fake.namespace)
    with pytest.raises(PermanentRuntimeError, match="Service"):
        fake.runtime().apply_version(bad, make_spec(fake, 1), Track.STABLE)


def test_a_name_may_start_with_a_digit(cluster: Cluster) -> None:
    # Kubernetes 1.36 validates Service names as DNS-1123 labels (RelaxedServiceNameValidation
    # on by default); before 1.36 this Service was refused.
    fake = fake_only(cluster)
    ref = DeploymentRef(name="9lives", model="m", environment="e", namespace=fake.namespace)
    fake.runtime().apply_version(ref, make_spec(fake, 1), Track.STABLE)
    assert fake.server.get("services", fake.namespace, "9lives-v1") is not None


def test_a_quantity_the_server_refuses_is_permanent(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    runtime = fake.runtime()
    with pytest.raises(PermanentRuntimeError, match="cpu_request"):
        runtime.apply_version(
            ref, make_spec(fake, 1, resources=Resources(cpu_request="lots")), Track.STABLE
        )
    assert fake.server.all("deployments") == []


@pytest.mark.expect_invalid
def test_a_request_above_its_limit_is_answered_422(cluster: Cluster, ref: DeploymentRef) -> None:
    fake = fake_only(cluster)
    too_much = Resources(cpu_request="2", cpu_limit="1")
    with pytest.raises(PermanentRuntimeError, match=r"422.*less than or equal to cpu limit"):
        fake.runtime().apply_version(ref, make_spec(fake, 1, resources=too_much), Track.STABLE)


# Traffic reaches the data plane when the Gateway's controller has accepted the route: on a
# cluster that is its controller's doing, here the test's (`accept_route`, `reject_route`).


@pytest.mark.k8s
def test_a_route_is_not_applied_until_the_gateway_accepts_it(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    runtime = cluster.runtime()
    for version in (1, 2):
        runtime.apply_version(ref, make_spec(cluster, version), Track.STABLE)
    first = TrafficSplit({1: 90, 2: 10})
    runtime.set_traffic(ref, first)
    assert not runtime.traffic_applied(ref, first), "written, but no controller has taken it"
    cluster.accept_route(ref)
    assert runtime.traffic_applied(ref, first)
    second = TrafficSplit({1: 50, 2: 50})
    runtime.set_traffic(ref, second)
    # Accepted still, but for the previous generation: the new weights are not served yet.
    assert not runtime.traffic_applied(ref, second)
    cluster.accept_route(ref)
    assert runtime.traffic_applied(ref, second)
    assert not runtime.traffic_applied(ref, first), "the route no longer holds that split"


@pytest.mark.k8s
def test_a_rejected_route_is_not_applied(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime()
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    split = TrafficSplit.all_to(1)
    runtime.set_traffic(ref, split)
    cluster.reject_route(ref)
    assert not runtime.traffic_applied(ref, split)


@pytest.mark.k8s
def test_setting_the_same_traffic_twice_sends_no_write(
    cluster: Cluster, ref: DeploymentRef
) -> None:
    runtime = cluster.runtime()
    split = TrafficSplit({1: 100}, mirror=Mirror(version=1, percent=10))
    runtime.set_traffic(ref, split)
    cluster.accept_route(ref)
    cluster.forget_writes()
    runtime.set_traffic(ref, split)
    assert cluster.writes() == []
    assert runtime.traffic_applied(ref, split)


@pytest.mark.k8s
def test_endpoints_are_in_cluster_service_urls(cluster: Cluster, ref: DeploymentRef) -> None:
    runtime = cluster.runtime(entrypoint_url="http://models.example")
    assert runtime.endpoint(ref, 1) is None
    runtime.apply_version(ref, make_spec(cluster, 1), Track.STABLE)
    assert runtime.endpoint(ref, 1) == (
        f"http://{ref.name}-v1.{ref.namespace}.svc.cluster.local:80"
    )
    assert runtime.endpoint(ref) == "http://models.example"
