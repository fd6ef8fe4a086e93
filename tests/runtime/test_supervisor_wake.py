"""The supervisor's wake-up socket: LocalRuntime nudges it after changing desired state, so a
change (a rollback's switch) reaches the router at once instead of at the next loop. A nudge
only ever names a deployment under the supervisor's own state directory, and without the socket
(a state directory too deep for a Unix socket path) the loop alone still applies every change."""

from __future__ import annotations

import socket
from pathlib import Path

from deployments.runtime.base import Track, TrafficSplit
from deployments.runtime.local import LocalRuntime, deployment_dir, wake_path, wake_supervisor
from deployments.runtime.supervisor import Supervisor
from tests.runtime.conftest import (
    FAST_SUPERVISOR_ARGS,
    STANDIN_COMMAND,
    SupervisedRuntime,
    apply_ready,
    version_spec,
    wait_for,
)

AF_UNIX_PATH_MAX = 108  # sun_path on Linux, with its terminating NUL


def _routed(sr: SupervisedRuntime, ref, weights: dict[str, int]) -> bool:
    routes = sr.runtime.routed_traffic(ref)
    return bool(routes) and routes["weights"] == weights and set(weights) <= set(routes["backends"])


def _supervised_by(sr: SupervisedRuntime, ref, pid: int) -> bool:
    return sr.observed(ref).get("supervisor", {}).get("pid") == pid


def test_a_change_reaches_the_router_on_a_nudge_without_waiting_for_the_loop(
    local_runtime, ref, artifact
) -> None:
    sr = local_runtime()
    apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
    sr.runtime.set_traffic(ref, TrafficSplit.all_to(1))
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="router table at 1:100")
    # A supervisor whose loop comes round only every 10 minutes: it adopts the running
    # processes at start, after which only a nudge makes it look at the deployment again.
    sr.kill()
    sr.supervisor_args["interval"] = 600
    sr.start()
    assert sr.process is not None
    wait_for(lambda: _supervised_by(sr, ref, sr.process.pid), what="the new supervisor's report")
    wait_for(lambda: _routed(sr, ref, {"1": 100}), what="the table pushed to the adopted router")

    sr.runtime.set_traffic(ref, TrafficSplit.all_to(2))

    wait_for(lambda: _routed(sr, ref, {"2": 100}), timeout=30, what="router table at 2:100")


def test_the_wake_socket_is_removed_when_the_supervisor_stops(local_runtime) -> None:
    sr = local_runtime()
    wait_for(lambda: wake_path(sr.state_dir).is_socket(), what="the wake-up socket")
    assert sr.stop() == 0
    assert not wake_path(sr.state_dir).exists()


def test_a_nudge_naming_a_path_outside_the_state_dir_is_ignored(tmp_path, monkeypatch) -> None:
    state_dir = tmp_path / "state"
    ours = deployment_dir(state_dir, "dev", "fraud")
    theirs = deployment_dir(tmp_path / "elsewhere", "dev", "fraud")
    for ddir in (ours, theirs, state_dir / "deployments" / "dev" / "other"):
        ddir.mkdir(parents=True)
    supervisor = Supervisor(state_dir)
    reconciled: list[Path] = []
    monkeypatch.setattr(supervisor, "reconcile", reconciled.append)
    wake = supervisor._bind_wake_socket()
    assert wake is not None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            for named in (
                theirs,  # the same namespace and name, in another directory
                state_dir / "deployments" / "dev" / "other" / ".." / "fraud",
                state_dir / "deployments" / "dev" / "missing",
                Path("/"),
            ):
                sender.sendto(str(named).encode(), str(wake_path(state_dir)))
            sender.sendto(b"\xff\xfe not a path", str(wake_path(state_dir)))
        wake_supervisor(state_dir, ours)

        supervisor._wait_for_wake(wake, timeout=5.0)
    finally:
        wake.close()

    assert reconciled == [ours]


def test_without_a_wake_socket_the_loop_still_applies_changes(
    tmp_path_factory, ref, artifact
) -> None:
    state_dir = tmp_path_factory.mktemp("runtime-state") / ("deep-" * 20)
    state_dir.mkdir()
    assert len(str(wake_path(state_dir))) >= AF_UNIX_PATH_MAX
    runtime = LocalRuntime(state_dir, serving_command=STANDIN_COMMAND, progress_deadline_s=60.0)
    sr = SupervisedRuntime(state_dir, runtime, dict(FAST_SUPERVISOR_ARGS))
    try:
        sr.start()
        apply_ready(sr, ref, artifact, {1: Track.STABLE, 2: Track.CANARY})
        sr.runtime.set_traffic(ref, TrafficSplit.all_to(2))  # the nudge fails, silently
        wait_for(lambda: _routed(sr, ref, {"2": 100}), what="router table at 2:100")
        assert not wake_path(state_dir).exists()
        assert "no wake-up socket" in (state_dir / "supervisor.log").read_text()
    finally:
        sr.teardown()


def test_a_nudge_with_no_supervisor_listening_is_harmless(tmp_path, ref, artifact) -> None:
    runtime = LocalRuntime(tmp_path, serving_command=STANDIN_COMMAND)
    # A socket file a killed supervisor left behind: nobody reads it.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(wake_path(tmp_path)))
    stale.close()
    runtime.apply_version(ref, version_spec(artifact, 1), Track.STABLE)
    runtime.set_traffic(ref, TrafficSplit.all_to(1))
    assert runtime.get_traffic(ref) == TrafficSplit.all_to(1)
