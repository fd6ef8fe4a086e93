"""The supervisor and LocalRuntime together, with real processes on loopback: versions come up
READY, traffic follows set_traffic, crashes are restarted, crash loops end FAILED, and nothing is
left running after the supervisor stops."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import urllib.request

import aiohttp

from deployments.runtime.base import Mirror, Readiness, Track, TrafficSplit
from tests.runtime.conftest import (
    apply_ready,
    http_json,
    pid_alive,
    version_spec,
    wait_for,
)


def _routed(sr, ref, weights: dict[str, int]) -> bool:
    routes = sr.runtime.routed_traffic(ref)
    return bool(routes) and routes["weights"] == weights and set(weights) <= set(routes["backends"])


def _post(url: str) -> tuple[str, dict]:
    req = urllib.request.Request(url + "/predict", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["X-Served-By-Version"], json.loads(resp.read())


def test_versions_become_ready_and_traffic_follows_set_traffic(
    local_runtime, ref, artifact
) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
    status = sr.runtime.version_status(ref, 1)
    assert (status.desired_replicas, status.available_replicas) == (1, 1)
    assert sr.runtime.list_versions(ref) == [1, 2]

    direct = sr.runtime.endpoint(ref, 2)
    assert json.loads(urllib.request.urlopen(direct + "/v2/health/ready").read())["ready"]

    sr.runtime.set_traffic(ref, TrafficSplit.all_to(1))
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="router table at 1:100")
    entry = sr.runtime.endpoint(ref)
    assert {_post(entry)[0] for _ in range(5)} == {"1"}

    sr.runtime.set_traffic(ref, TrafficSplit.all_to(2))
    wait_for(lambda: _routed(sr, ref, {"2": 100}), what="router table at 2:100")
    served, body = _post(entry)
    assert (served, body["version"], body["track"]) == ("2", "2", "canary")


def test_ten_thousand_requests_hold_a_five_ninety_five_split(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
    sr.runtime.set_traffic(ref, TrafficSplit({1: 95, 2: 5}))
    wait_for(lambda: _routed(sr, ref, {"1": 95, "2": 5}), what="router table at 95/5")
    url = sr.runtime.endpoint(ref) + "/predict"

    async def drive(total: int = 10_000, concurrency: int = 16) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        remaining = total
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with session.post(url, data=b'{"x": 1}') as resp:
                        assert resp.status == 200
                        body = await resp.json()
                        assert body["version"] == resp.headers["X-Served-By-Version"]
                        counts[resp.headers["X-Served-By-Version"]] += 1

            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 60)
        return counts

    counts = asyncio.run(drive())
    assert sum(counts.values()) == 10_000
    assert abs(counts["2"] / 10_000 * 100 - 5) <= 1.5
    assert abs(counts["1"] / 10_000 * 100 - 95) <= 1.5


def test_a_shadow_receives_mirrored_copies_but_never_answers(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.SHADOW})
    sr.runtime.set_traffic(ref, TrafficSplit({1: 100}, mirror=Mirror(2, 50)))
    wait_for(
        lambda: (
            (sr.runtime.routed_traffic(ref) or {}).get("mirror") == {"version": "2", "percent": 50}
            and "2" in sr.runtime.routed_traffic(ref)["backends"]
        ),
        what="mirror routed",
    )
    entry = sr.runtime.endpoint(ref)
    answers = [_post(entry) for _ in range(40)]
    assert {(served, body["version"]) for served, body in answers} == {("1", "1")}
    shadow = sr.runtime.endpoint(ref, 2)
    hits = wait_for(
        lambda: (h := http_json(shadow + "/-/hits"))["mirrored"] >= 20 and h, what="20 mirrored"
    )
    assert hits["hits"] == hits["mirrored"] == 20  # exactly half, and nothing else reached it
    assert http_json(sr.runtime.endpoint(ref, 1) + "/-/hits")["hits"] == 40


def test_a_killed_serving_process_is_restarted(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})
    old_pid = sr.observed(ref)["versions"]["1"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(
        lambda: (
            sr.observed(ref)["versions"]["1"]["restarts"] == 1
            and sr.runtime.version_status(ref, 1).ready
        ),
        what="restarted and ready",
    )
    observed = sr.observed(ref)["versions"]["1"]
    assert observed["pid"] != old_pid
    assert "code -9" in observed["last_error"]


def test_a_version_whose_digest_does_not_match_ends_failed(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    uri, _ = artifact
    bad = version_spec((uri, "sha256:" + "0" * 64), 1)
    sr.runtime.apply_version(ref, bad, Track.CANARY)
    status = wait_for(
        lambda: (s := sr.runtime.version_status(ref, 1)).readiness is Readiness.FAILED and s,
        what="FAILED",
    )
    assert "crash loop" in status.message
    assert "digest mismatch" in status.message
    assert sr.observed(ref)["versions"]["1"]["pid"] is None  # no longer restarted

    # A corrected spec is a new generation with a fresh crash budget.
    sr.runtime.apply_version(ref, version_spec(artifact, 1), Track.CANARY)
    wait_for(lambda: sr.runtime.version_status(ref, 1).ready, what="fixed version ready")


def test_a_version_that_never_gets_ready_fails_its_progress_deadline(
    local_runtime, ref, artifact
) -> None:
    sr = local_runtime(progress_deadline_s=1.0)
    spec = version_spec(artifact, 1, serving_env={"STANDIN_READY_AFTER_S": "600"})
    sr.runtime.apply_version(ref, spec, Track.CANARY)
    assert sr.runtime.version_status(ref, 1).readiness is Readiness.PROGRESSING
    status = wait_for(
        lambda: (s := sr.runtime.version_status(ref, 1)).readiness is Readiness.FAILED and s,
        what="deadline FAILED",
    )
    assert "progress deadline" in status.message


def test_scale_to_zero_stops_the_process_and_back_starts_it(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})
    pid = sr.observed(ref)["versions"]["1"]["pid"]

    sr.runtime.scale_version(ref, 1, 0)
    status = wait_for(
        lambda: (s := sr.runtime.version_status(ref, 1)).ready and s.desired_replicas == 0 and s,
        what="scaled to 0",
    )
    assert status.available_replicas == 0
    wait_for(lambda: not pid_alive(pid), what="process gone")
    assert sr.runtime.list_versions(ref) == [1]  # kept
    assert sr.runtime.endpoint(ref, 1) is None

    sr.runtime.scale_version(ref, 1, 1)
    wait_for(lambda: sr.runtime.version_status(ref, 1).available_replicas == 1, what="back up")
    assert sr.runtime.endpoint(ref, 1) is not None


def test_remove_version_stops_its_process(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
    pid = sr.observed(ref)["versions"]["2"]["pid"]
    sr.runtime.remove_version(ref, 2)
    sr.runtime.remove_version(ref, 2)  # idempotent
    assert sr.runtime.version_status(ref, 2).readiness is Readiness.ABSENT
    assert sr.runtime.list_versions(ref) == [1]
    wait_for(lambda: not pid_alive(pid), what="removed version's process gone")
    wait_for(lambda: "2" not in sr.observed(ref)["versions"], what="observed forgets v2")


def test_reapplying_does_not_restart_a_running_version(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})
    pid = sr.observed(ref)["versions"]["1"]["pid"]
    for _ in range(3):
        sr.runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
        sr.runtime.set_traffic(ref, TrafficSplit.all_to(1))
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="routed")
    assert sr.observed(ref)["versions"]["1"]["pid"] == pid
    assert sr.runtime.version_status(ref, 1).ready

    # A new track is a relabel (promotion): the same process goes on serving.
    generation = sr.observed(ref)["versions"]["1"]["generation"]
    sr.runtime.apply_version(ref, version_spec(artifact, 1), Track.CANARY)
    wait_for(
        lambda: (
            sr.observed(ref)["versions"]["1"]["generation"] > generation
            and sr.runtime.version_status(ref, 1).ready
        ),
        what="the relabel observed",
    )
    assert sr.observed(ref)["versions"]["1"]["pid"] == pid

    # A changed spec does replace the process.
    sr.runtime.apply_version(
        ref, version_spec(artifact, 1, env={"LOG_LEVEL": "debug"}), Track.CANARY
    )
    wait_for(
        lambda: (
            sr.observed(ref)["versions"]["1"]["pid"] not in (None, pid)
            and sr.runtime.version_status(ref, 1).ready
        ),
        what="replaced",
    )
    # The old process gets SIGTERM and its grace period; it is gone soon after, not at once.
    wait_for(lambda: not pid_alive(pid), what="old process gone")


def test_stopping_the_supervisor_leaves_no_child_processes(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
    sr.runtime.set_traffic(ref, TrafficSplit({1: 50, 2: 50}))
    wait_for(lambda: _routed(sr, ref, {"1": 50, "2": 50}), what="routed")
    pids = sr.recorded_pids()
    assert len(pids) == 3  # two versions and the router
    assert sr.stop() == 0
    assert [p for p in pids if pid_alive(p)] == []
    assert sr.runtime.version_status(ref, 1).readiness is not Readiness.READY


def test_a_restarted_supervisor_adopts_running_processes(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})
    sr.runtime.set_traffic(ref, TrafficSplit.all_to(1))
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="routed")
    before = sr.observed(ref)
    url = sr.runtime.endpoint(ref)

    sr.kill()  # children keep running
    assert pid_alive(before["versions"]["1"]["pid"])
    sr.start()
    wait_for(
        lambda: (
            sr.observed(ref).get("supervisor", {}).get("pid") == sr.process.pid
            and sr.runtime.version_status(ref, 1).ready
        ),
        what="new supervisor reporting ready",
    )
    after = sr.observed(ref)
    assert after["versions"]["1"]["pid"] == before["versions"]["1"]["pid"]
    assert after["router"]["pid"] == before["router"]["pid"]
    assert sr.runtime.endpoint(ref) == url
    assert _post(url)[0] == "1"
    pids = sr.recorded_pids()
    assert sr.stop() == 0
    assert [p for p in pids if pid_alive(p)] == []


def test_a_second_supervisor_on_the_same_state_dir_refuses_to_run(
    local_runtime, ref, artifact
) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})  # the first one holds the lock by now
    twin = local_runtime(start=False)
    twin.state_dir = sr.state_dir
    twin.start()
    assert twin.process.wait(timeout=15) == 2
    twin.process = None
    assert sr.process.poll() is None
    assert sr.runtime.version_status(ref, 1).ready


def test_a_killed_router_is_restarted_on_the_same_url(local_runtime, ref, artifact) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE})
    sr.runtime.set_traffic(ref, TrafficSplit.all_to(1))
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="routed")
    url = sr.runtime.endpoint(ref)
    old_pid = sr.observed(ref)["router"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(
        lambda: (
            sr.observed(ref)["router"]["pid"] not in (None, old_pid)
            and _routed(sr, ref, {"1": 100})
        ),
        what="router back with its table",
    )
    assert sr.runtime.endpoint(ref) == url
    assert _post(url)[0] == "1"
    assert sr.observed(ref)["router"]["restarts"] == 1
