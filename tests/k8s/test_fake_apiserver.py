"""The fake API server behaves like the real one where the runtime depends on it: optimistic
concurrency, Status objects, status/spec separation, generation, selectors, merge-patch and
validation. Driven through the official client."""

from __future__ import annotations

import json

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
