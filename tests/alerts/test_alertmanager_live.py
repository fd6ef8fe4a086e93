"""A real Alertmanager (Debian's prometheus-alertmanager) on loopback posts to a live server of
this project with a team's write token read from a file: two alerts of one group arrive as two
alerts on the team's deployment, repeat notifications add nothing, and resolving one of them
resolves that one only while the other keeps firing. Everything waits by polling with a
deadline; nothing sleeps for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertEventKind, AlertSource, AlertStatus
from core import clock
from tests.factories import RegisteredModelFactory, deployment_of, environment_of, make_token
from tests.support.alertmanager import alertmanager_factory, rfc3339  # noqa: F401 (fixture)

DEADLINE_SECONDS = 15.0


@pytest.fixture(autouse=True)
def real_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


def wait_for(what: str, check: Callable[[], Any], server: Any) -> Any:
    """Poll `check` until it returns something truthy, for at most DEADLINE_SECONDS."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(
        f"not within {DEADLINE_SECONDS}s: {what}; notifications (sent, failed) = "
        f"{server.notifications()}\nAlertmanager log:\n{server.log_tail()}"
    )


def _if_two(items: list[Any]) -> list[Any]:
    return items if len(items) == 2 else []


def ours() -> Any:
    return Alert.objects.filter(source=AlertSource.ALERTMANAGER).order_by("id")


@pytest.mark.slow
def test_alertmanager_delivers_deduplicates_and_resolves_one_by_one(
    transactional_db,
    live_server,
    team,
    alertmanager_factory,  # noqa: F811 (fixture)
):
    deployment = deployment_of(
        RegisteredModelFactory(team=team, name="fraud-scorer"), environment_of("production")
    )
    _, secret = make_token(team, ["write"])
    server = alertmanager_factory(
        # 127.0.0.1, not "localhost": loopback over IPv4 only, whatever the resolver says.
        webhook_url=live_server.url.replace("localhost", "127.0.0.1")
        + "/api/v1/alerts/alertmanager",
        token=secret,
        repeat_interval="2s",
    )
    started = timezone.now() - timedelta(minutes=1)

    def alert(instance: str, **extra: Any) -> dict[str, Any]:
        return {
            "labels": {
                "alertname": "ModelHighErrorRate",
                "severity": "critical",
                "modelplane_deployment": str(deployment.pk),
                "instance": instance,
            },
            "annotations": {"summary": f"errors on {instance}"},
            "startsAt": rfc3339(started),
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
            **extra,
        }

    # Two alerts, one group (grouped by alertname).
    server.post_alerts([alert("pod-a"), alert("pod-b")])
    held = wait_for("Alertmanager holds both", lambda: _if_two(server.alerts()), server)
    fingerprints = {a["labels"]["instance"]: a["fingerprint"] for a in held}

    arrived = wait_for("both alerts arrive", lambda: _if_two(list(ours())), server)
    assert {a.fingerprint for a in arrived} == set(fingerprints.values())
    for a in arrived:
        assert (a.team, a.deployment, a.needs_triage) == (team, deployment, False)
        assert a.status == AlertStatus.FIRING
        assert a.severity == "critical"
        assert a.starts_at == started
    assert server.notifications()[1] == 0  # no failed post: the token was accepted

    # repeat_interval: Alertmanager posts the same group again; nothing new comes of it.
    seen = {a.pk: a.last_seen_at for a in arrived}
    sent = server.notifications()[0]
    wait_for(
        "a repeat notification is taken",
        lambda: (
            server.notifications()[0] > sent and all(a.last_seen_at > seen[a.pk] for a in ours())
        ),
        server,
    )
    assert ours().count() == 2
    for a in ours():
        assert [e.kind for e in a.events.filter(kind=AlertEventKind.FIRED)] == ["fired"]

    # Resolve pod-a only (endsAt in the past); the group, and pod-b, keep firing.
    server.post_alerts([alert("pod-a", endsAt=rfc3339(timezone.now() - timedelta(seconds=1)))])
    pod_a = ours().get(fingerprint=fingerprints["pod-a"])
    wait_for(
        "pod-a resolves",
        lambda: Alert.objects.get(pk=pod_a.pk).status == AlertStatus.RESOLVED,
        server,
    )
    # A later notification (pod-b alone, firing) is taken too, and changes nothing for pod-a.
    pod_b = ours().get(fingerprint=fingerprints["pod-b"])
    wait_for(
        "a notification after the resolve is taken",
        lambda: Alert.objects.get(pk=pod_b.pk).last_seen_at > pod_b.last_seen_at,
        server,
    )
    pod_a = Alert.objects.get(pk=pod_a.pk)
    pod_b = ours().get(fingerprint=fingerprints["pod-b"])
    assert pod_a.status == AlertStatus.RESOLVED
    assert pod_a.events.filter(kind=AlertEventKind.RESOLVED).count() == 1
    assert pod_b.status == AlertStatus.FIRING
    assert ours().count() == 2
    assert server.notifications()[1] == 0
