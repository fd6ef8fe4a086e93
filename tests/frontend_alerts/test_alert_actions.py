"""POST /alerts/<id>/<verb>/: acknowledge, silence, reassign, note, resolve and open an incident
from the alert page, each through the alert lifecycle; refusals re-render the page with the
error on the field (4xx) and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.models import Alert, AlertEvent, AlertEventKind, Incident
from core import clock
from tests.factories import give_duty
from tests.support.pages import html_of


def act(alert: Alert, verb: str) -> str:
    return f"/alerts/{alert.pk}/{verb}/"


def kinds(alert: Alert) -> list[str]:
    return list(AlertEvent.objects.filter(alert=alert).values_list("kind", flat=True))


def test_the_assignee_acknowledges(browser_for, alert):
    client = browser_for("maintainer")
    response = client.post(act(alert, "acknowledge"), {"note": "looking"})
    assert response.status_code == 302 and response["Location"] == f"/alerts/{alert.pk}/"
    alert.refresh_from_db()
    assert alert.status == "acknowledged" and alert.acknowledged_by.username == "maintainer"
    html = html_of(client, response["Location"])
    assert f"You acknowledged alert #{alert.pk}." in html
    assert "<strong>Acknowledged</strong> by maintainer: looking" in html


def test_the_on_call_duty_acknowledges(browser_for, alert, team, people):
    give_duty(people["viewer"], team, is_on_call=True)
    assert browser_for("viewer").post(act(alert, "acknowledge")).status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "viewer"


def test_a_viewer_is_refused_and_nothing_changes(browser_for, alert):
    client = browser_for("viewer")
    for verb, data in (
        ("acknowledge", {}),
        ("resolve", {"reason": "x"}),
        ("note", {"text": "hello"}),
        ("reassign", {"assignee": "viewer", "reason": "mine now"}),
        ("open-incident", {}),
    ):
        response = client.post(act(alert, verb), data)
        assert response.status_code == 403, verb
    alert.refresh_from_db()
    assert alert.status == "firing" and alert.assignee.username == "maintainer"
    assert kinds(alert) == [AlertEventKind.FIRED]
    assert not Incident.objects.exists()


def test_an_outsider_gets_404_and_nothing_changes(browser_for, alert):
    assert browser_for("outsider").post(act(alert, "acknowledge")).status_code == 404
    alert.refresh_from_db()
    assert alert.status == "firing"


def test_silence_until_a_time(browser_for, alert):
    until = (clock.now() + timedelta(hours=3)).replace(second=0, microsecond=0)
    response = browser_for("owner").post(
        act(alert, "silence"), {"until": f"{until:%Y-%m-%dT%H:%M}", "reason": "maintenance"}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.silenced_until == until
    assert AlertEventKind.SILENCED in kinds(alert)


def test_silence_in_the_past_is_refused_on_its_field(browser_for, alert):
    past = clock.now() - timedelta(hours=1)
    response = browser_for("owner").post(act(alert, "silence"), {"until": f"{past:%Y-%m-%dT%H:%M}"})
    html = response.content.decode()
    assert response.status_code == 422
    assert 'id="id_until_error">must be in the future' in html
    alert.refresh_from_db()
    assert alert.silenced_until is None


def test_silence_without_a_time_is_bad_input(browser_for, alert):
    response = browser_for("owner").post(act(alert, "silence"), {"until": ""})
    assert response.status_code == 400
    assert 'id="id_until_error"' in response.content.decode()


def test_reassign_hands_the_alert_over(browser_for, alert):
    response = browser_for("owner").post(
        act(alert, "reassign"), {"assignee": "viewer", "reason": "she is on shift"}
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.assignee.username == "viewer"
    event = AlertEvent.objects.get(alert=alert, kind=AlertEventKind.REASSIGNED)
    assert event.text == "she is on shift" and event.data == {"from": "maintainer", "to": "viewer"}


def test_reassign_without_a_reason_is_refused_naming_the_reason(browser_for, alert):
    response = browser_for("owner").post(act(alert, "reassign"), {"assignee": "viewer"})
    html = response.content.decode()
    assert 400 <= response.status_code < 500
    assert 'id="id_reason_error">say why the alert changes hands' in html
    assert "reason say why" in html  # the page message names the field too
    alert.refresh_from_db()
    assert alert.assignee.username == "maintainer"


def test_reassign_to_an_outsider_is_refused_naming_the_assignee(browser_for, alert):
    response = browser_for("owner").post(
        act(alert, "reassign"), {"assignee": "outsider", "reason": "try"}
    )
    assert response.status_code == 422
    assert 'id="id_assignee_error">&#x27;outsider&#x27; is not an active member' in (
        response.content.decode()
    )


def test_a_note_goes_on_the_timeline(browser_for, alert):
    client = browser_for("maintainer")
    response = client.post(act(alert, "note"), {"text": "p95 is back under 200 ms"})
    assert response.status_code == 302
    assert "<strong>Note</strong> by maintainer: p95 is back under 200 ms" in html_of(
        client, f"/alerts/{alert.pk}/"
    )


def test_an_empty_note_is_refused_on_its_field(browser_for, alert):
    response = browser_for("maintainer").post(act(alert, "note"), {"text": "  "})
    assert response.status_code == 422
    assert 'id="id_text_error">a note cannot be empty' in response.content.decode()
    assert kinds(alert) == [AlertEventKind.FIRED]


def test_resolve_then_nothing_more_to_do(browser_for, alert):
    client = browser_for("maintainer")
    assert client.post(act(alert, "resolve"), {"reason": "fixed"}).status_code == 302
    alert.refresh_from_db()
    assert alert.status == "resolved"
    response = client.post(act(alert, "acknowledge"))
    assert response.status_code == 409
    assert "the alert is resolved" in response.content.decode()


def test_open_incident_from_the_alert(browser_for, alert):
    response = browser_for("maintainer").post(act(alert, "open-incident"))
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}/"
    assert incident.deployment_id == alert.deployment_id
    assert incident.owner.username == "maintainer"  # the alert's assignee
    alert.refresh_from_db()
    assert alert.incident_id == incident.pk


def test_an_unknown_verb_is_404(browser_for, alert):
    assert browser_for("owner").post(act(alert, "delete")).status_code == 404


@pytest.mark.parametrize("verb", ["acknowledge", "open-incident"])
def test_it_rejects_get(browser_for, alert, verb):
    assert browser_for("owner").get(act(alert, verb)).status_code == 405
