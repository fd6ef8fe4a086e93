"""The fake API server behaves like the real one where the runtime depends on it: optimistic
concurrency, Status objects, status/spec separation, generation, selectors, merge-patch,
validation, what it stores (defaults, canonical quantities: checked against a real 1.36.2
server) and route status left to the Gateway controller. Driven through the official client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from deployments.runtime import k8s_objects as objects
from deployments.runtime.base import DeploymentRef, Track, TrafficSplit, VersionSpec
from tests.k8s.fake_apiserver import FakeApiServer, label_selector_matcher

REF = DeploymentRef(name="fraud", model="m", environment="prod", namespace="ml")


def deployment(version: int = 1, image: str = "img") -> dict:
    spec = VersionSpec(
        version=version, artifact_uri="s3://m", artifact_digest="sha256:" + "a" * 64, image=image
    )
    return objects.deployment_manifest(REF, spec, Track.STABLE, objects.ObjectOptions())


def raw(response) -> dict:
    return json.loads(response.data)


@pytest.fixture
def apps(fake_server: FakeApiServer) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(fake_server.api_client())


def test_it_assigns_server_fields_on_create(apps: k8s.AppsV1Api) -> None:
    created = raw(apps.create_namespaced_deployment("ml", deployment(), _preload_content=False))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0


def test_it_answers_already_exists_and_not_found(apps: k8s.AppsV1Api) -> None:
    apps.create_namespaced_deployment("ml", deployment())
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment("ml", deployment())
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as missing:
        apps.read_namespaced_deployment("nope", "ml")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["kind"] == "Status"


def test_it_rejects_a_stale_resource_version(apps: k8s.AppsV1Api) -> None:
    first = raw(apps.create_namespaced_deployment("ml", deployment(), _preload_content=False))
    changed = deployment(image="img2")
    changed["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    second = raw(
        apps.replace_namespaced_deployment("fraud-v1", "ml", changed, _preload_content=False)
    )
    assert second["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as stale:
        apps.replace_namespaced_deployment("fraud-v1", "ml", changed)
    assert stale.value.status == 409
    assert json.loads(stale.value.body)["reason"] == "Conflict"


def test_status_and_spec_are_written_separately(
    apps: k8s.AppsV1Api, fake_server: FakeApiServer
) -> None:
    apps.create_namespaced_deployment("ml", deployment())
    fake_server.mark_deployment_ready("ml", "fraud-v1")
    live = fake_server.get("deployments", "ml", "fraud-v1")
    body = {**live, "status": {"replicas": 99}}
    body["spec"]["replicas"] = 5
    apps.replace_namespaced_deployment("fraud-v1", "ml", body)
    after = fake_server.get("deployments", "ml", "fraud-v1")
    assert after["spec"]["replicas"] == 5
    assert after["status"]["availableReplicas"] == 1  # main-resource writes keep status
    body = {**after, "status": {"replicas": 3}}
    body["spec"]["replicas"] = 7
    apps.replace_namespaced_deployment_status("fraud-v1", "ml", body)
    final = fake_server.get("deployments", "ml", "fraud-v1")
    assert final["status"] == {"replicas": 3}
    assert final["spec"]["replicas"] == 5  # /status writes keep spec


def test_it_merge_patches(apps: k8s.AppsV1Api, fake_server: FakeApiServer) -> None:
    apps.create_namespaced_deployment("ml", deployment())
    apps.patch_namespaced_deployment(
        "fraud-v1", "ml", {"metadata": {"labels": {"team": "risk"}}, "spec": {"replicas": 2}}
    )
    live = fake_server.get("deployments", "ml", "fraud-v1")
    assert live["metadata"]["labels"]["team"] == "risk"
    assert live["metadata"]["labels"][objects.LABEL_NAME] == "fraud"
    assert live["spec"]["replicas"] == 2 and live["metadata"]["generation"] == 2


def test_it_lists_by_equality_and_set_selectors(apps: k8s.AppsV1Api) -> None:
    for version in (1, 2, 3):
        apps.create_namespaced_deployment("ml", deployment(version))
    names = lambda sel: [  # noqa: E731
        d["metadata"]["name"]
        for d in raw(
            apps.list_namespaced_deployment("ml", label_selector=sel, _preload_content=False)
        )["items"]
    ]
    assert names("modelplane.io/version in (1,3)") == ["fraud-v1", "fraud-v3"]
    assert names("app.kubernetes.io/name=fraud,modelplane.io/version!=2") == [
        "fraud-v1",
        "fraud-v3",
    ]
    assert names("modelplane.io/version notin (1, 2),!missing") == ["fraud-v3"]


def test_selector_parsing_handles_existence() -> None:
    matches = label_selector_matcher("a,b in (x, y)")
    assert matches({"a": "1", "b": "y"})
    assert not matches({"b": "x"})


def test_it_answers_invalid_objects_with_422(fake_server: FakeApiServer) -> None:
    custom = k8s.CustomObjectsApi(fake_server.api_client())
    route = objects.httproute_manifest(REF, TrafficSplit.all_to(1), objects.ObjectOptions())
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", "ml", "httproutes", route
        )
    assert invalid.value.status == 422
    status = json.loads(invalid.value.body)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.rules.0.backendRefs.0.weight"
    assert fake_server.get("httproutes", "ml", "fraud") is None


# What a real kube-apiserver 1.36.2 stored for the same bodies (tests/k8s/data/README.md) ------

REAL_SERVER = Path(__file__).resolve().parent / "data" / "real-apiserver-1.36"
# Identity and bookkeeping the server assigns afresh on every create; the runtime reads none of
# them but resourceVersion, which it only hands back. (managedFields: the fake does no
# server-side apply.)
_ASSIGNED = ("uid", "resourceVersion", "creationTimestamp", "managedFields")


def _comparable(obj: dict) -> dict:
    obj = json.loads(json.dumps(obj))
    for key in _ASSIGNED:
        obj["metadata"].pop(key, None)
    if obj["kind"] == "Service":
        # The allocated address differs between runs, its shape does not.
        assert obj["spec"]["clusterIPs"] == [obj["spec"]["clusterIP"]]
        obj["spec"]["clusterIP"] = "<allocated>"
        obj["spec"]["clusterIPs"] = ["<allocated>"]
    return obj


def _create(client: k8s.ApiClient, body: dict) -> dict:
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if body["kind"] == "Deployment":
        api = k8s.AppsV1Api(client)
        api.create_namespaced_deployment(ns, body)
        return raw(api.read_namespaced_deployment(name, ns, _preload_content=False))
    if body["kind"] == "Service":
        api = k8s.CoreV1Api(client)
        api.create_namespaced_service(ns, body)
        return raw(api.read_namespaced_service(name, ns, _preload_content=False))
    if body["kind"] == "HorizontalPodAutoscaler":
        api = k8s.AutoscalingV2Api(client)
        api.create_namespaced_horizontal_pod_autoscaler(ns, body)
        return raw(api.read_namespaced_horizontal_pod_autoscaler(name, ns, _preload_content=False))
    custom = k8s.CustomObjectsApi(client)
    where = ("gateway.networking.k8s.io", "v1", ns, "httproutes")
    custom.create_namespaced_custom_object(*where, body)
    return raw(custom.get_namespaced_custom_object(*where, name, _preload_content=False))


@pytest.mark.parametrize(
    "name",
    [
        "Deployment-fraud-v1",
        "Deployment-fraud-v2",
        "Service-fraud-v1",
        "HorizontalPodAutoscaler-fraud-v1",
        "HTTPRoute-fraud",
    ],
)
def test_it_stores_what_kube_apiserver_1_36_stored(fake_server: FakeApiServer, name: str) -> None:
    sent = json.loads((REAL_SERVER / "sent" / f"{name}.json").read_text())
    real = json.loads((REAL_SERVER / f"{name}.json").read_text())
    stored = _create(fake_server.api_client(), sent)
    assert _comparable(stored) == _comparable(real)


def test_it_stores_quantities_as_kube_apiserver_1_36_did(fake_server: FakeApiServer) -> None:
    quantities = json.loads((REAL_SERVER / "quantities.json").read_text())
    body = json.loads((REAL_SERVER / "sent" / "Deployment-fraud-v1.json").read_text())
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = quantities["sent"]
    stored = _create(fake_server.api_client(), body)
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == quantities["stored"]


def test_a_body_that_differs_only_by_defaults_changes_nothing(
    apps: k8s.AppsV1Api, fake_server: FakeApiServer
) -> None:
    created = raw(apps.create_namespaced_deployment("ml", deployment(), _preload_content=False))
    body = deployment()
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "0.25"
    replaced = raw(
        apps.replace_namespaced_deployment("fraud-v1", "ml", body, _preload_content=False)
    )
    assert replaced["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert replaced["metadata"]["generation"] == 1


def test_an_unparsable_quantity_is_a_bad_request(apps: k8s.AppsV1Api) -> None:
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "1GB"
    with pytest.raises(ApiException) as bad:
        apps.create_namespaced_deployment("ml", body)
    assert bad.value.status == 400
    assert "quantities must match the regular expression" in json.loads(bad.value.body)["message"]


@pytest.mark.expect_invalid
def test_a_request_above_its_limit_is_invalid(apps: k8s.AppsV1Api) -> None:
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1500m"
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment("ml", body)
    assert invalid.value.status == 422
    (cause,) = json.loads(invalid.value.body)["details"]["causes"]
    assert cause["field"] == "spec.template.spec.containers[0].resources.requests"
    assert "must be less than or equal to cpu limit of 1" in cause["message"]


def test_a_service_name_may_start_with_a_digit(fake_server: FakeApiServer) -> None:
    # Kubernetes 1.36: RelaxedServiceNameValidation is on by default.
    core = k8s.CoreV1Api(fake_server.api_client())
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "9lives"},
        "spec": {"ports": [{"port": 80}]},
    }
    created = raw(core.create_namespaced_service("ml", service, _preload_content=False))
    assert created["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert "generation" not in created["metadata"]


def _route(fake_server: FakeApiServer) -> None:
    custom = k8s.CustomObjectsApi(fake_server.api_client())
    route = objects.httproute_manifest(REF, TrafficSplit.all_to(1), objects.ObjectOptions())
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "ml", "httproutes", route
    )


def test_a_route_has_no_status_until_the_gateway_controller_writes_one(
    fake_server: FakeApiServer,
) -> None:
    _route(fake_server)
    assert "status" not in fake_server.get("httproutes", "ml", "fraud")
    fake_server.gateway.accept("ml", "fraud")
    (parent,) = fake_server.get("httproutes", "ml", "fraud")["status"]["parents"]
    (condition,) = parent["conditions"]
    assert (condition["type"], condition["status"], condition["observedGeneration"]) == (
        "Accepted",
        "True",
        1,
    )
    fake_server.gateway.reject("ml", "fraud")
    (parent,) = fake_server.get("httproutes", "ml", "fraud")["status"]["parents"]
    assert parent["conditions"][0]["status"] == "False"


def test_an_automatic_gateway_controller_accepts_every_route_written() -> None:
    server = FakeApiServer().start()  # the default, for tests that are not about the Gateway
    try:
        assert server.gateway.automatic
        _route(server)
        status = server.get("httproutes", "ml", "fraud")["status"]
        assert status["parents"][0]["conditions"][0]["status"] == "True"
        server.gateway.hold()
        assert not server.gateway.automatic
    finally:
        server.stop()


def test_a_route_gets_the_defaults_of_its_crd(fake_server: FakeApiServer) -> None:
    custom = k8s.CustomObjectsApi(fake_server.api_client())
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bare"},
        "spec": {
            "parentRefs": [{"name": "modelplane"}],
            "rules": [{"backendRefs": [{"name": "fraud-v1", "port": 80}]}],
        },
    }
    custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", "ml", "httproutes", route
    )
    stored = fake_server.get("httproutes", "ml", "bare")["spec"]
    assert stored["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "modelplane"}
    ]
    rule = stored["rules"][0]
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "fraud-v1", "port": 80, "weight": 1}
    ]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
