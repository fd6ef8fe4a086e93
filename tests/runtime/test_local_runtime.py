"""LocalRuntime's desired-state side, without a supervisor: idempotence, validation, locking and
what it reports when nobody supervises the state directory."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from deployments.runtime.base import (
    DeploymentRef,
    Mirror,
    PermanentRuntimeError,
    Readiness,
    Runtime,
    Track,
    TrafficSplit,
)
from deployments.runtime.local import LocalRuntime, deployment_dir, desired_path
from tests.runtime.conftest import version_spec


def _desired(runtime: LocalRuntime, ref: DeploymentRef) -> dict:
    path = desired_path(deployment_dir(runtime.state_dir, ref.namespace, ref.name))
    return json.loads(path.read_text())


def test_it_satisfies_the_runtime_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalRuntime(tmp_path), Runtime)


def test_applying_the_same_spec_twice_changes_nothing(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    first = _desired(runtime, ref)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    assert _desired(runtime, ref) == first


def test_a_changed_spec_bumps_the_version_generation(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    runtime.apply_version(ref, version_spec(artifact, 1, env={"BATCH": "4"}), Track.STABLE)
    entry = _desired(runtime, ref)["versions"]["1"]
    assert entry["generation"] == 2
    assert entry["env"]["BATCH"] == "4"


def test_model_identity_cannot_be_overridden_by_spec_env(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    spec = version_spec(artifact, 3, env={"MODEL_ARTIFACT_DIGEST": "sha256:evil"})
    runtime.apply_version(ref, spec, Track.CANARY)
    env = _desired(runtime, ref)["versions"]["3"]["env"]
    assert env["MODEL_ARTIFACT_DIGEST"] == artifact[1]
    assert env["MODEL_VERSION"] == "3"
    assert env["MODEL_TRACK"] == "canary"
    assert env["MODEL_NAME"] == "fraud-detector"


def test_set_traffic_is_idempotent_and_round_trips(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    for v in (1, 2):
        runtime.apply_version(ref, version_spec(artifact, v), Track.STABLE)
    split = TrafficSplit({1: 95, 2: 5}, mirror=Mirror(2, 10))
    runtime.set_traffic(ref, split)
    generation = _desired(runtime, ref)["generation"]
    runtime.set_traffic(ref, split)
    assert _desired(runtime, ref)["generation"] == generation
    assert runtime.get_traffic(ref) == split


def test_set_traffic_rejects_versions_that_were_never_applied(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    with pytest.raises(PermanentRuntimeError, match=r"\[2\]"):
        runtime.set_traffic(ref, TrafficSplit({1: 50, 2: 50}))
    assert runtime.get_traffic(ref) is None


def test_unknown_versions_and_deployments_are_absent(tmp_path, ref) -> None:
    runtime = LocalRuntime(tmp_path)
    assert runtime.version_status(ref, 9).readiness is Readiness.ABSENT
    assert runtime.list_versions(ref) == []
    assert runtime.endpoint(ref) is None
    runtime.remove_version(ref, 9)  # not an error
    assert not deployment_dir(tmp_path, ref.namespace, ref.name).exists()


def test_scaling_a_version_that_does_not_exist_is_refused(tmp_path, ref) -> None:
    with pytest.raises(PermanentRuntimeError):
        LocalRuntime(tmp_path).scale_version(ref, 4, 1)


def test_names_that_are_not_dns_labels_are_refused(tmp_path, artifact) -> None:
    bad = DeploymentRef(name="../etc", model="m", environment="dev")
    with pytest.raises(PermanentRuntimeError):
        LocalRuntime(tmp_path).apply_version(bad, version_spec(artifact, 1), Track.STABLE)


def test_without_a_supervisor_a_version_progresses_then_fails_its_deadline(
    tmp_path, ref, artifact
) -> None:
    runtime = LocalRuntime(tmp_path, progress_deadline_s=0.3)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    status = runtime.version_status(ref, 1)
    assert status.readiness is Readiness.PROGRESSING
    assert "no supervisor" in status.message
    time.sleep(0.4)
    status = runtime.version_status(ref, 1)
    assert status.readiness is Readiness.FAILED
    assert "progress deadline" in status.message


def test_the_router_url_is_allocated_once_and_stays(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path)
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    url = runtime.endpoint(ref)
    runtime.apply_version(ref, version_spec(artifact, 2), Track.CANARY)
    assert LocalRuntime(tmp_path).endpoint(ref) == url
    assert url.startswith("http://127.0.0.1:")


def _apply_many(state_dir: str, ref: DeploymentRef, artifact: tuple[str, str], base: int) -> None:
    runtime = LocalRuntime(state_dir)
    for v in range(base, base + 15):
        runtime.apply_version(ref, version_spec(artifact, v), Track.STABLE)


def test_concurrent_writers_never_lose_each_others_versions(tmp_path, ref, artifact) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_apply_many, args=(str(tmp_path), ref, artifact, base))
        for base in (100, 200, 300)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(LocalRuntime(tmp_path).list_versions(ref)) == 45
