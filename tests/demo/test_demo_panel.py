"""/demo/: the demo's switches (drifted traffic, faults), only in demo mode."""

from __future__ import annotations

import json

import pytest

from deployments import services
from identity.audit import Actor
from identity.models import AuditEvent
from tests.factories import RegisteredModelFactory


@pytest.fixture
def demo(settings, tmp_path, people, team):  # type: ignore[no-untyped-def]
    settings.DEMO = True
    settings.VAR_DIR = tmp_path
    system = Actor.system("tests")
    env = services.environment_create(
        actor=system,
        name="production",
        runtime_kind="local",
        runtime_config={"state_dir": str(tmp_path / "rt"), "namespace": "production"},
        metrics_kind="local",
    )
    model = RegisteredModelFactory(team=team, name="breast-cancer")
    return services.deployment_create(
        actor=Actor.from_principal(people["maintainer"]), model=model, environment=env, name="bc"
    )


def test_it_is_not_there_outside_demo_mode(client, people, settings):
    settings.DEMO = False
    client.force_login(people["maintainer"])
    assert client.get("/demo/").status_code == 404


def test_it_shows_the_switches(client, people, demo):
    client.force_login(people["maintainer"])
    response = client.get("/demo/")
    assert response.status_code == 200
    assert b"Send drifted inputs" in response.content
    assert b"No version is running yet" in response.content


def test_it_switches_the_traffic_to_drifted_inputs(client, people, demo, tmp_path):
    client.force_login(people["maintainer"])
    response = client.post("/demo/", {"drift": "on"})
    assert response.status_code == 302
    assert json.loads((tmp_path / "demo" / "traffic.json").read_text())["drift"] is True
    event = AuditEvent.objects.get(action="demo.traffic")
    assert event.after == {"drift": True} and event.actor_label == "maintainer"


def test_a_viewer_cannot_switch(client, people, demo, tmp_path):
    client.force_login(people["viewer"])
    client.post("/demo/", {"drift": "on"})
    assert not (tmp_path / "demo" / "traffic.json").exists()
    assert not AuditEvent.objects.filter(action="demo.traffic").exists()


def test_a_fault_on_a_version_that_is_not_running_is_refused(client, people, demo):
    client.force_login(people["maintainer"])
    response = client.post("/demo/", {"version": "7", "fault": "slow"}, follow=True)
    assert b"v7 is not running" in response.content
    assert not AuditEvent.objects.filter(action="demo.fault").exists()


def test_an_unknown_fault_names_the_field(client, people, demo):
    client.force_login(people["maintainer"])
    response = client.post("/demo/", {"version": "1", "fault": "explode"}, follow=True)
    assert b"must be one of" in response.content


def test_wrong_method(client, people, demo):
    client.force_login(people["maintainer"])
    assert client.put("/demo/").status_code == 405
