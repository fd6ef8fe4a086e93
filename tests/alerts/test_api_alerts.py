"""/api/v1/alerts/: members of the owning team (and CI tokens of that team) list and read its
alerts, others get 404; only the assignee, the team's on-call or an owner acknowledges,
silences, reassigns or resolves, and never a CI token; bad input names the field and changes
nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.models import Alert, AlertEvent, AlertStatus, Delivery
from core import clock
from identity.models import AuditEvent
from tests.factories import (
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environment_of,
    give_duty,
)

LIST = "/api/v1/alerts/"


def url(alert: Alert, verb: str = "") -> str:
    return f"/api/v1/alerts/{alert.pk}/" + (f"{verb}/" if verb else "")


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    model = RegisteredModelFactory(team=team, name="fraud-detector")
    return deployment_of(model, environment_of("production"))


@pytest.fixture
def alert(team, deployment, people):  # type: ignore[no-untyped-def]
    return alert_of(team, deployment=deployment, rule="drift", assignee=people["viewer"])


@pytest.fixture
def other_alert(other_team):  # type: ignore[no-untyped-def]
    return alert_of(other_team, rule="budget")


# Reading --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "who", ["owner", "maintainer", "viewer", "admin", "token:read", "token:write"]
)
def test_members_and_team_tokens_list_the_teams_alerts(client_for, who, alert, other_alert):
    response = client_for(who).get(LIST)
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert alert.pk in ids
    assert (other_alert.pk in ids) == (who == "admin")


def test_an_outsider_lists_only_its_own_teams_alerts(client_for, alert, other_alert):
    ids = {row["id"] for row in client_for("outsider").get(LIST).json()["results"]}
    assert ids == {other_alert.pk}


def test_anonymous_is_refused(client_for, alert):
    assert client_for("anonymous").get(LIST).status_code == 401
    assert client_for("anonymous").get(url(alert)).status_code == 401


@pytest.mark.parametrize("who", ["outsider", "token:read"])
def test_an_alert_of_another_team_is_not_found(client_for, who, alert, other_alert):
    target = alert if who == "outsider" else other_alert
    assert client_for(who).get(url(target)).status_code == 404
    assert client_for(who).post(url(target, "acknowledge"), {}, format="json").status_code == 404


def test_the_detail_carries_the_timeline_and_the_deliveries(client_for, alert, people):
    Delivery.objects.create(
        alert=alert,
        change="fired",
        kind="email",
        recipient=f"user:{people['viewer'].pk}",
        user=people["viewer"],
        status="sent",
        attempts=1,
    )
    body = client_for("token:read").get(url(alert)).json()
    assert body["title"] == alert.title and body["assignee"] == "viewer"
    assert body["deployment"] == alert.deployment_id and body["environment"] == "production"
    assert [e["kind"] for e in body["events"]] == ["fired"]
    assert body["deliveries"][0]["user"] == "viewer" and body["deliveries"][0]["status"] == "sent"


def test_filters_narrow_the_list(client_for, team, people, alert, deployment):
    resolved = alert_of(team, rule="budget", status="resolved", severity="warning")
    triage = alert_of(team, rule="am", needs_triage=True, source="alertmanager")
    mine = alert_of(team, rule="mine", assignee=people["owner"])
    client = client_for("owner")

    def ids(query: str) -> set[int]:
        response = client.get(f"{LIST}?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=resolved") == {resolved.pk}
    assert ids("severity=warning") == {resolved.pk}
    assert ids("triage=true") == {triage.pk}
    assert ids("source=alertmanager") == {triage.pk}
    assert ids("assignee=me") == {mine.pk}
    assert ids("assignee=viewer") == {alert.pk}
    assert ids(f"deployment={deployment.pk}") == {alert.pk}
    assert ids("team=fraud") == {alert.pk, resolved.pk, triage.pk, mine.pk}
    assert ids("team=search") == set()


def test_a_token_is_nobodys_assignee(client_for, alert):
    assert client_for("token:read").get(f"{LIST}?assignee=me").json()["results"] == []


def test_a_bad_filter_names_it(client_for, alert):
    response = client_for("owner").get(f"{LIST}?status=burning")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "status"


# Responding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("owner", 200),
        ("viewer", 200),  # the assignee
        ("maintainer", 403),
        ("admin", 200),
        ("token:write", 403),
        ("token:read", 403),
        ("anonymous", 401),
        ("outsider", 404),
    ],
)
def test_who_may_acknowledge(client_for, alert, who, code):
    response = client_for(who).post(url(alert, "acknowledge"), {"note": "on it"}, format="json")
    assert response.status_code == code, response.json()
    alert.refresh_from_db()
    assert (alert.status == AlertStatus.ACKNOWLEDGED) == (code == 200)
    if code == 200:
        assert response.json()["status"] == "acknowledged"
        assert response.json()["events"][-1]["kind"] == "acknowledged"
        assert AuditEvent.objects.filter(action="alert.acknowledge").count() == 1


def test_a_token_is_told_a_person_decides(client_for, alert):
    response = client_for("token:write").post(url(alert, "acknowledge"), {}, format="json")
    assert "a person decides" in response.json()["detail"]


def test_a_maintainer_on_call_may_respond(client_for, alert, people, team):
    give_duty(people["maintainer"], team, is_on_call=True)
    response = client_for("maintainer").post(url(alert, "resolve"), {"reason": "ok"}, format="json")
    assert response.status_code == 200
    assert Alert.objects.get(pk=alert.pk).status == AlertStatus.RESOLVED


def test_the_assignee_silences_until_a_time(client_for, alert):
    until = (clock.now() + timedelta(hours=2)).isoformat()
    response = client_for("viewer").post(
        url(alert, "silence"), {"until": until, "reason": "deploying a fix"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["is_silenced"] is True
    alert.refresh_from_db()
    assert alert.silenced_until is not None and alert.status == AlertStatus.FIRING


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({}, "until", 400),
        ({"until": "2030-01-01T10:00:00"}, "until", 400),  # no offset
        ({"until": "tomorrow"}, "until", 400),
        ({"until": "2000-01-01T10:00:00Z"}, "until", 422),  # in the past
        ({"until": "2999-01-01T10:00:00Z"}, "until", 422),  # more than 7 days
        ({"until": "2999-01-01T10:00:00Z", "why": "x"}, "why", 400),
    ],
)
def test_a_bad_silence_names_the_field(client_for, alert, body, field, code):
    response = client_for("owner").post(url(alert, "silence"), body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert Alert.objects.get(pk=alert.pk).silenced_until is None


def test_the_owner_reassigns_with_a_reason(client_for, alert):
    response = client_for("owner").post(
        url(alert, "reassign"), {"assignee": "maintainer", "reason": "knows drift"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["assignee"] == "maintainer"
    assert AlertEvent.objects.filter(alert=alert, kind="reassigned").count() == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"assignee": "outsider", "reason": "x"}, "assignee", 422),
        ({"assignee": "nobody", "reason": "x"}, "assignee", 422),
        ({"assignee": "maintainer", "reason": " "}, "reason", 422),
        ({"assignee": "maintainer"}, "reason", 400),
        ({"assignee": 7, "reason": "x"}, "assignee", 400),
    ],
)
def test_a_bad_reassignment_names_the_field(client_for, alert, body, field, code):
    response = client_for("owner").post(url(alert, "reassign"), body, format="json")
    assert response.status_code == code, response.json()
    assert response.json()["errors"][0]["field"] == field
    assert Alert.objects.get(pk=alert.pk).assignee.username == "viewer"


def test_notes_go_on_the_timeline(client_for, alert):
    response = client_for("viewer").post(url(alert, "notes"), {"text": "looking"}, format="json")
    assert response.status_code == 201
    assert response.json()["events"][-1]["text"] == "looking"


@pytest.mark.parametrize(("body", "code"), [({"text": ""}, 422), ({"text": 5}, 400), ({}, 400)])
def test_an_empty_note_is_refused(client_for, alert, body, code):
    response = client_for("viewer").post(url(alert, "notes"), body, format="json")
    assert response.status_code == code
    assert response.json()["errors"][0]["field"] == "text"
    assert AlertEvent.objects.filter(alert=alert, kind="note").count() == 0


def test_a_resolved_alert_cannot_be_acknowledged(client_for, alert):
    Alert.objects.filter(pk=alert.pk).update(status=AlertStatus.RESOLVED)
    response = client_for("owner").post(url(alert, "acknowledge"), {}, format="json")
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "status"


def test_get_is_not_an_action(client_for, alert):
    assert client_for("owner").get(url(alert, "acknowledge")).status_code == 405
