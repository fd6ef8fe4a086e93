"""The pure builders: every object they produce validates against the Kubernetes and Gateway
API schemas, in every shape (GPU or not, HPA or not, mirror or not)."""

from __future__ import annotations

import itertools
import json

import pytest

from deployments.runtime import k8s_objects as objects
from deployments.runtime.base import (
    Autoscaling,
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
    Resources,
    SecretRef,
    Track,
    TrafficSplit,
    VersionSpec,
)
from tests.k8s.schemas import Invalid, validate_object

REF = DeploymentRef(name="fraud", model="Fraud Detector/v2", environment="prod", namespace="ml")
OPTIONS = objects.ObjectOptions(gateway_namespace="gateways", gateway_section_name="http")
SECRET_VALUE = "s3cr3t-never-anywhere"


def make_spec(*, gpu: int = 0, hpa: bool = False, version: int = 3) -> VersionSpec:
    return VersionSpec(
        version=version,
        artifact_uri="s3://models/fraud/3/model.skops",
        artifact_digest="sha256:" + "c" * 64,
        image="registry.example/serving@sha256:" + "d" * 64,
        replicas=2,
        resources=Resources(gpu=gpu),
        autoscaling=Autoscaling(min_replicas=2, max_replicas=6) if hpa else None,
        env={"LOG_LEVEL": "info"},
        secret_refs=(SecretRef("DB_PASSWORD", "fraud-db", "password"),),
        release_id=42,
        serving_env={"MAX_BATCH": "32"},
    )


@pytest.mark.parametrize(
    ("gpu", "hpa", "track"), list(itertools.product([0, 2], [False, True], Track))
)
def test_every_version_object_validates(gpu: int, hpa: bool, track: Track) -> None:
    spec = make_spec(gpu=gpu, hpa=hpa)
    built = [
        objects.deployment_manifest(REF, spec, track, OPTIONS),
        objects.service_manifest(REF, spec, track, OPTIONS),
    ]
    hpa_obj = objects.hpa_manifest(REF, spec, track, OPTIONS)
    assert (hpa_obj is not None) is hpa
    if hpa_obj is not None:
        built.append(hpa_obj)
    for obj in built:
        validate_object(obj)


@pytest.mark.parametrize(
    "split",
    [
        TrafficSplit.all_to(1),
        TrafficSplit({1: 90, 2: 10}),
        TrafficSplit({1: 100, 2: 0}, mirror=Mirror(version=2, percent=25)),
        TrafficSplit({}, mirror=None),
    ],
)
def test_every_httproute_validates_and_round_trips(split: TrafficSplit) -> None:
    route = objects.httproute_manifest(REF, split, OPTIONS)
    validate_object(route)
    assert objects.traffic_from_httproute(REF, route) == split


def test_gpu_is_a_limit_only() -> None:
    container = objects.deployment_manifest(REF, make_spec(gpu=1), Track.STABLE, OPTIONS)["spec"][
        "template"
    ]["spec"]["containers"][0]
    assert container["resources"]["limits"][objects.GPU_RESOURCE] == "1"
    assert objects.GPU_RESOURCE not in container["resources"]["requests"]


def test_no_gpu_means_no_gpu_resource() -> None:
    text = json.dumps(objects.deployment_manifest(REF, make_spec(), Track.STABLE, OPTIONS))
    assert objects.GPU_RESOURCE not in text


def test_secrets_are_references_and_serving_env_cannot_be_shadowed() -> None:
    spec = VersionSpec(
        version=1,
        artifact_uri="s3://m",
        artifact_digest="sha256:" + "e" * 64,
        image="img",
        env={"MODEL_VERSION": "spoofed"},
        secret_refs=(SecretRef("API_KEY", "keys", "api"),),
    )
    env = objects.container_env(REF, spec)
    by_name = {e["name"]: e for e in env}
    assert by_name["MODEL_VERSION"] == {"name": "MODEL_VERSION", "value": "1"}
    assert "MODEL_TRACK" not in by_name  # the track is not the pods' to know
    assert by_name["API_KEY"] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "keys", "key": "api"}},
    }
    assert len(by_name) == len(env)


def test_selector_never_contains_the_track() -> None:
    manifest = objects.deployment_manifest(REF, make_spec(), Track.CANARY, OPTIONS)
    assert objects.LABEL_TRACK not in manifest["spec"]["selector"]["matchLabels"]
    assert manifest["metadata"]["labels"][objects.LABEL_TRACK] == "canary"


def test_the_pod_template_is_the_same_on_every_track() -> None:
    # A promotion (canary -> stable, preview -> stable) then changes metadata only: no new
    # generation, no pod restarted.
    spec = make_spec()
    templates = {
        json.dumps(objects.deployment_manifest(REF, spec, track, OPTIONS)["spec"], sort_keys=True)
        for track in Track
    }
    assert len(templates) == 1
    template = objects.deployment_manifest(REF, spec, Track.CANARY, OPTIONS)["spec"]["template"]
    assert objects.LABEL_TRACK not in template["metadata"]["labels"]
    assert objects.ANNOTATION_RELEASE not in template["metadata"]["annotations"]


def test_selectors_select_the_version_pods() -> None:
    # A Deployment's selector must match its template's labels, and the Service reaches pods
    # by their labels: both are subsets of what the pods carry.
    spec = make_spec()
    deployment = objects.deployment_manifest(REF, spec, Track.CANARY, OPTIONS)
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    service = objects.service_manifest(REF, spec, Track.CANARY, OPTIONS)
    for selector in (deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"]):
        assert selector.items() <= pods.items()
        assert selector[objects.LABEL_VERSION] == "3"
    assert service["metadata"]["labels"][objects.LABEL_TRACK] == "canary"


def test_resources_are_sent_in_the_form_the_server_stores() -> None:
    spec = VersionSpec(
        version=1,
        artifact_uri="s3://m",
        artifact_digest="sha256:" + "e" * 64,
        resources=Resources(
            cpu_request="0.5", cpu_limit="1000m", memory_request="0.5Gi", memory_limit="1024Mi"
        ),
    )
    assert objects.container_resources(spec) == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_a_resource_that_is_no_quantity_is_a_permanent_error() -> None:
    spec = VersionSpec(
        version=1,
        artifact_uri="s3://m",
        artifact_digest="sha256:" + "e" * 64,
        resources=Resources(memory_limit="1GB"),
    )
    with pytest.raises(PermanentRuntimeError, match="memory_limit"):
        objects.container_resources(spec)


def test_label_values_are_made_valid() -> None:
    assert objects.label_value("Fraud Detector/v2") == "Fraud-Detector-v2"
    assert len(objects.label_value("x" * 100)) == 63


def test_route_weights_on_another_scale_are_read_as_percentages() -> None:
    route = objects.httproute_manifest(REF, TrafficSplit({1: 50, 2: 50}), OPTIONS)
    for backend, weight in zip(route["spec"]["rules"][0]["backendRefs"], (1, 2), strict=True):
        backend["weight"] = weight
    split = objects.traffic_from_httproute(REF, route)
    assert split is not None and split.weights == {1: 33, 2: 67}


def test_validator_rejects_an_unknown_field() -> None:
    manifest = objects.deployment_manifest(REF, make_spec(), Track.STABLE, OPTIONS)
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(Invalid):
        validate_object(manifest)


def test_validator_rejects_a_mirror_without_port() -> None:
    route = objects.httproute_manifest(REF, TrafficSplit({1: 100}, Mirror(2, 5)), OPTIONS)
    del route["spec"]["rules"][0]["filters"][0]["requestMirror"]["backendRef"]["port"]
    with pytest.raises(Invalid, match="Must have port"):
        validate_object(route)
