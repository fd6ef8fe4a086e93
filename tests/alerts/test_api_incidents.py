"""/api/v1/incidents/: opened from an alert in one click (team, deployment, severity, title and
owner come from it) or by hand; members of the team read them (others get 404); maintainers,
owners and the team's on-call run them, never a CI token; notes, status and owner changes are
audited events on the timeline; bad input names the field and writes nothing."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

from alerts import incidents
from alerts.models import Alert, Incident, IncidentEvent, IncidentStatus
from deployments import services as deployment_services
from identity.models import AuditEvent
from tests.factories import (
    SYSTEM,
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environment_of,
    escalation_policy_of,
    give_duty,
    incident_of,
    oncall_schedule_of,
)

LIST = "/api/v1/incidents/"


def url(incident: Incident, verb: str = "") -> str:
    return f"{LIST}{incident.pk}/" + (f"{verb}/" if verb else "")


@pytest.fixture
def production(db):  # type: ignore[no-untyped-def]
    return environment_of("production")


@pytest.fixture
def deployment(team, production):  # type: ignore[no-untyped-def]
    deployment = deployment_of(RegisteredModelFactory(team=team, name="fraud-detector"), production)
    deployment_services.deployment_configure(
        actor=SYSTEM, deployment=deployment, rollback_notes="Roll back, then page the data team."
    )
    return deployment


@pytest.fixture
def alert(team, deployment):  # type: ignore[no-untyped-def]
    return alert_of(team, deployment=deployment, rule="release_failed", severity="critical")


@pytest.fixture
def incident(team, alert):  # type: ignore[no-untyped-def]
    return incident_of(team, alert=alert)


# Opening --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("owner", 201),
        ("maintainer", 201),
        ("admin", 201),
        ("viewer", 403),
        ("token:write", 403),
        ("token:read", 403),
        ("anonymous", 401),
        ("outsider", 404),
    ],
)
def test_who_may_open_an_incident_from_an_alert(client_for, alert, who, code):
    response = client_for(who).post(LIST, {"alert": alert.pk}, format="json")
    assert response.status_code == code, response.json()
    assert Incident.objects.exists() == (code == 201)
    if code == 201:
        body = response.json()
        assert (body["title"], body["severity"], body["team"]) == (alert.title, "critical", "fraud")
        assert body["deployment"] == alert.deployment_id
        assert [a["id"] for a in body["alerts"]] == [alert.pk]
        assert body["rollback_notes"] == "Roll back, then page the data team."
        assert any(e["kind"] == "alert.fired" for e in body["timeline"])
        assert Alert.objects.get(pk=alert.pk).incident_id == body["id"]
        assert AuditEvent.objects.filter(action="incident.open").count() == 1


def test_a_viewer_on_call_may_open_one(client_for, alert, people, team):
    give_duty(people["viewer"], team, is_on_call=True)
    response = client_for("viewer").post(LIST, {"alert": alert.pk}, format="json")
    assert response.status_code == 201
    assert response.json()["owner"] == "viewer"  # nobody else assigned or on a schedule


def test_the_owner_is_the_alerts_assignee(client_for, team, deployment, people):
    alert = alert_of(team, deployment=deployment, assignee=people["viewer"])
    response = client_for("maintainer").post(LIST, {"alert": alert.pk}, format="json")
    assert response.json()["owner"] == "viewer"


def test_else_the_owner_is_whoever_is_on_call_now(client_for, alert, team, people):
    schedule = oncall_schedule_of(team, [people["owner"]])
    escalation_policy_of(team, [{"target": "team_owners"}], name="others", is_default=False)
    escalation_policy_of(
        team,
        [{"target": "user", "user": "viewer"}, {"target": "schedule", "schedule": schedule.pk}],
    )
    response = client_for("maintainer").post(LIST, {"alert": alert.pk}, format="json")
    assert response.json()["owner"] == "owner"


def test_else_the_owner_is_the_person_opening_it(client_for, alert):
    response = client_for("maintainer").post(LIST, {"alert": alert.pk}, format="json")
    assert response.json()["owner"] == "maintainer"
    assert response.json()["opened_by"] == "maintainer"


def test_an_alert_already_in_an_open_incident_conflicts(client_for, incident, alert):
    response = client_for("owner").post(LIST, {"alert": alert.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "alert"
    assert Incident.objects.count() == 1


def test_an_incident_is_opened_by_hand(client_for, deployment):
    body = {"team": "fraud", "title": "scores look off", "severity": "warning"}
    response = client_for("maintainer").post(
        LIST, {**body, "deployment": deployment.pk}, format="json"
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["title"], created["severity"], created["deployment"]) == (
        "scores look off",
        "warning",
        deployment.pk,
    )
    assert created["alerts"] == [] and created["owner"] == "maintainer"


def test_a_retry_with_the_same_key_opens_one_incident(client_for, alert):
    client = client_for("maintainer")
    first = client.post(LIST, {"alert": alert.pk}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = client.post(LIST, {"alert": alert.pk}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and Incident.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"title": "x", "severity": "critical"}, "team", 422),
        ({"team": "fraud", "severity": "critical"}, "title", 422),
        ({"team": "fraud", "title": "x", "severity": "apocalyptic"}, "severity", 400),
        ({"team": "search", "title": "x"}, "team", 404),
        ({"team": "fraud", "title": "x", "deployment": 999999}, "deployment", 404),
        ({"alert": 999999}, "alert", 404),
        ({"alert": "1"}, "alert", 400),
        ({"team": "fraud", "title": "x" * 301}, "title", 400),
        ({"team": "fraud", "title": "x", "owner": "viewer"}, "owner", 400),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(client_for, body, field, code):
    response = client_for("maintainer").post(LIST, body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert not Incident.objects.exists() and not IncidentEvent.objects.exists()


def test_a_deployment_of_another_team_is_refused(client_for, other_team, production):
    theirs = deployment_of(RegisteredModelFactory(team=other_team, name="ranker"), production)
    body = {"team": "fraud", "title": "x", "deployment": theirs.pk}
    assert client_for("owner").post(LIST, body, format="json").status_code == 404
    response = client_for("admin").post(LIST, body, format="json")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "deployment"
    assert not Incident.objects.exists()


# Reading --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("owner", True),
        ("viewer", True),
        ("token:read", True),
        ("admin", True),
        ("outsider", False),
    ],
)
def test_members_read_the_teams_incidents(client_for, incident, who, visible):
    client = client_for(who)
    ids = {row["id"] for row in client.get(LIST).json()["results"]}
    assert (incident.pk in ids) == visible
    assert client.get(url(incident)).status_code == (200 if visible else 404)


def test_filters_narrow_the_list(client_for, team, incident, people):
    mine = incident_of(team, title="by hand", severity="info")
    client = client_for("owner")
    incidents.set_owner(
        actor=SYSTEM, incident=mine, username="owner", reason="I will take this one"
    )

    def ids(query: str) -> set[int]:
        response = client.get(f"{LIST}?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids("owner=me") == {mine.pk}
    assert ids("severity=info") == {mine.pk}
    assert ids("status=open") == {incident.pk, mine.pk}
    assert ids("status=closed") == set()
    assert ids(f"deployment={incident.deployment_id}") == {incident.pk}


# Running --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code"),
    [("maintainer", 201), ("owner", 201), ("viewer", 403), ("token:write", 403), ("outsider", 404)],
)
def test_who_may_leave_a_note(client_for, incident, who, code):
    response = client_for(who).post(url(incident, "notes"), {"text": "p95 doubled"}, format="json")
    assert response.status_code == code
    assert IncidentEvent.objects.filter(kind="note").exists() == (code == 201)
    if code == 201:
        notes = [e for e in response.json()["timeline"] if e["kind"] == "incident.note"]
        assert notes[0]["text"] == "p95 doubled" and notes[0]["actor"] == who


@pytest.mark.parametrize(("body", "code"), [({"text": "  "}, 422), ({}, 400), ({"text": 1}, 400)])
def test_an_empty_note_is_refused(client_for, incident, body, code):
    response = client_for("maintainer").post(url(incident, "notes"), body, format="json")
    assert response.status_code == code
    assert response.json()["errors"][0]["field"] == "text"
    assert not IncidentEvent.objects.filter(kind="note").exists()


def test_an_incident_is_mitigated_then_closed_with_a_summary(client_for, incident):
    client = client_for("maintainer")
    mitigated = client.post(url(incident, "status"), {"status": "mitigated"}, format="json")
    assert mitigated.status_code == 200 and mitigated.json()["mitigated_at"] is not None
    refused = client.post(url(incident, "status"), {"status": "closed"}, format="json")
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "summary"
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.MITIGATED
    closed = client.post(
        url(incident, "status"),
        {"status": "closed", "summary": "v2 drifted; rolled back; add a drift gate"},
        format="json",
    )
    assert closed.status_code == 200
    assert closed.json()["summary"].startswith("v2 drifted")
    assert closed.json()["closed_at"] is not None
    reopened = client.post(url(incident, "status"), {"status": "open"}, format="json")
    assert reopened.status_code == 409
    assert reopened.json()["errors"][0]["field"] == "status"
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.CLOSED
    assert AuditEvent.objects.filter(action="incident.status").count() == 2


def test_a_bad_status_names_the_field(client_for, incident):
    response = client_for("owner").post(url(incident, "status"), {"status": "done"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "status"


def test_the_incident_changes_hands_with_a_reason(client_for, incident):
    response = client_for("owner").post(
        url(incident, "owner"), {"owner": "viewer", "reason": "handover at 18:00"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["owner"] == "viewer"
    event = IncidentEvent.objects.get(kind="owner")
    assert event.text == "handover at 18:00" and event.data["after"] == "viewer"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"owner": "outsider", "reason": "x"}, "owner", 422),
        ({"owner": "viewer", "reason": " "}, "reason", 422),
        ({"owner": "viewer"}, "reason", 400),
    ],
)
def test_a_bad_handover_names_the_field(client_for, incident, body, field, code):
    owner_before = Incident.objects.get(pk=incident.pk).owner_id
    response = client_for("owner").post(url(incident, "owner"), body, format="json")
    assert response.status_code == code
    assert response.json()["errors"][0]["field"] == field
    assert Incident.objects.get(pk=incident.pk).owner_id == owner_before


def test_another_alert_joins_the_incident(
    client_for, incident, alert, team, deployment, other_team
):
    second = alert_of(team, deployment=deployment, rule="slo_burn")
    response = client_for("maintainer").post(
        url(incident, "alerts"), {"alert": second.pk}, format="json"
    )
    assert response.status_code == 200
    assert sorted(a["id"] for a in response.json()["alerts"]) == [alert.pk, second.pk]
    assert IncidentEvent.objects.filter(incident=incident, kind="alert").count() == 1
    theirs = alert_of(other_team, rule="x")
    response = client_for("maintainer").post(
        url(incident, "alerts"), {"alert": theirs.pk}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "alert"


# Documentation and admin ----------------------------------------------------------------------


def test_every_route_is_documented(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    paths = yaml.safe_load(out.read_text())["paths"]
    expected = {
        "/api/v1/alerts/",
        "/api/v1/alerts/{id}/",
        *(f"/api/v1/alerts/{{id}}/{verb}/" for verb in ACTIONS),
        "/api/v1/schedules/",
        "/api/v1/schedules/{id}/",
        "/api/v1/schedules/{id}/layers/",
        "/api/v1/schedules/{id}/overrides/",
        "/api/v1/schedules/{id}/overrides/{override_id}/",
        "/api/v1/schedules/{id}/on-call/",
        "/api/v1/escalation-policies/",
        "/api/v1/escalation-policies/{id}/",
        "/api/v1/incidents/",
        "/api/v1/incidents/{id}/",
        *(f"/api/v1/incidents/{{id}}/{verb}/" for verb in ("notes", "status", "owner", "alerts")),
    }
    assert expected <= set(paths)
    create = paths["/api/v1/incidents/"]["post"]
    assert {"201", "409", "422"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    assert any(
        p["name"] == "at" for p in paths["/api/v1/schedules/{id}/on-call/"]["get"]["parameters"]
    )


ACTIONS = ("acknowledge", "resolve", "silence", "reassign", "notes")


def test_the_admin_shows_incidents_and_alerts_read_only(people, incident):
    browser = Client()
    browser.force_login(people["admin"])
    for name in ("incident", "alert", "schedule", "escalationpolicy", "notificationchannel"):
        assert browser.get(f"/admin/alerts/{name}/").status_code == 200, name
        assert browser.get(f"/admin/alerts/{name}/add/").status_code == 403, name
    assert browser.get(f"/admin/alerts/incident/{incident.pk}/change/").status_code == 200
