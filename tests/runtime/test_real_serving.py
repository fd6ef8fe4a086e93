"""The real inference service (`python -m serving`) run through LocalRuntime and its router: the
contract the runtime relies on (env, --host/--port, readiness, digest check) holds end to end."""

from __future__ import annotations

import collections
import json
import urllib.request
from pathlib import Path

import pytest

from deployments.runtime.base import DeploymentRef, Readiness, Track, TrafficSplit, VersionSpec
from deployments.runtime.local import DEFAULT_SERVING_COMMAND
from tests.runtime.conftest import wait_for

serving_demo = pytest.importorskip("serving.demo_model")


@pytest.fixture(scope="module")
def demo_packages(tmp_path_factory: pytest.TempPathFactory) -> list:
    return serving_demo.build_demo_versions(tmp_path_factory.mktemp("packages"))


def test_the_real_service_serves_a_split_and_refuses_a_bad_digest(
    local_runtime, demo_packages
) -> None:
    sr = local_runtime(serving_command=list(DEFAULT_SERVING_COMMAND))
    ref = DeploymentRef(name="breast-cancer", model=serving_demo.MODEL_NAME, environment="dev")
    # build_demo_versions returns v1 and v2, in that order.
    tracks = (Track.STABLE, Track.CANARY)
    for version, (info, track) in enumerate(zip(demo_packages, tracks, strict=True), start=1):
        spec = VersionSpec(
            version=version, artifact_uri=info.path.as_uri(), artifact_digest=info.digest
        )
        sr.runtime.apply_version(ref, spec, track)
    versions = sr.runtime.list_versions(ref)
    assert len(versions) == 2
    for v in versions:
        wait_for(lambda v=v: sr.runtime.version_status(ref, v).ready, 60, what=f"v{v} ready")
    sr.runtime.set_traffic(ref, TrafficSplit({versions[0]: 50, versions[1]: 50}))
    halves = {str(versions[0]): 50, str(versions[1]): 50}
    wait_for(
        lambda: (
            (r := sr.runtime.routed_traffic(ref))
            and r["weights"] == halves
            and len(r["backends"]) == 2
        ),
        what="routed to both",
    )

    body = json.dumps({"instances": serving_demo.sample_requests(1, seed=1)}).encode()
    served: collections.Counter[str] = collections.Counter()
    for _ in range(20):
        req = urllib.request.Request(sr.runtime.endpoint(ref) + "/predict", data=body)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
            assert answer["version"] == resp.headers["X-Served-By-Version"]
            assert len(answer["predictions"]) == 1
            served[answer["version"]] += 1
    assert served == {str(versions[0]): 10, str(versions[1]): 10}

    bad = VersionSpec(
        version=99,
        artifact_uri=Path(demo_packages[0].path).as_uri(),
        artifact_digest="sha256:" + "0" * 64,
    )
    sr.runtime.apply_version(ref, bad, Track.CANARY)
    status = wait_for(
        lambda: (s := sr.runtime.version_status(ref, 99)).readiness is Readiness.FAILED and s,
        60,
        what="bad digest FAILED",
    )
    assert "exited with code 3" in status.message
