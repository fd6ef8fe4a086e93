"""The incident pages: my teams' incidents, open ones first; one incident with its owner,
severity, status, gathered timeline (linked) and the deployment's rollback notes; its note,
status and owner forms for whoever runs incidents (maintainers, the on-call, owners)."""

from __future__ import annotations

import re

import pytest

from alerts.models import Incident, IncidentEvent
from deployments.models import Deployment, Rollback
from tests.factories import give_duty, incident_of
from tests.support.pages import html_of

FORMS = (">Add note</button>", ">Change status</button>", ">Hand over</button>")


@pytest.fixture
def incident(team, alert) -> Incident:  # type: ignore[no-untyped-def]
    return incident_of(team, alert=alert)


def url(incident: Incident, verb: str = "") -> str:
    return f"/incidents/{incident.pk}/" + (f"{verb}/" if verb else "")


def test_the_list_shows_open_incidents_first(browser_for, team, incident):
    closed = incident_of(team, title="last week's outage")
    Incident.objects.filter(pk=closed.pk).update(status="closed", summary="done")
    newer = incident_of(team, title="just now")
    Incident.objects.filter(pk=newer.pk).update(status="mitigated")
    html = html_of(browser_for("viewer"), "/incidents/")
    order = [html.index(f'href="/incidents/{i.pk}/"') for i in (incident, newer, closed)]
    assert order == sorted(order)
    row = html.split(f'href="/incidents/{incident.pk}/"')[1].split("</tr>")[0]
    assert "maintainer" in row and "Critical" in row and "fraud-detector" in row


def test_the_page_shows_owner_timeline_and_rollback_notes(browser_for, incident, deployment):
    Deployment.objects.filter(pk=deployment.pk).update(
        rollback_notes="Roll back first, then page the data team."
    )
    Rollback.objects.create(
        deployment=deployment,
        to_version=deployment.previous_stable_version,
        actor_label="system:engine",
        automatic=True,
        reason="canary failed its analysis",
    )
    html = html_of(browser_for("viewer"), url(incident))
    assert "<dt>Owner</dt><dd><strong>maintainer</strong></dd>" in html
    assert "<p>Roll back first, then page the data team.</p>" in html
    timeline = html.split('id="incident-timeline-title"')[1].split("</section>")[0]
    alert_id = incident.alerts.get().pk
    assert re.search(rf'<a href="/alerts/{alert_id}/">alert #{alert_id} [^<]*fired', timeline)
    assert f'<a href="/deployments/{deployment.pk}/">automatic rollback' in timeline
    assert "opened from alert" in timeline


def test_a_viewer_sees_it_without_forms_and_cannot_post(browser_for, incident):
    client = browser_for("viewer")
    html = html_of(client, url(incident))
    for button in FORMS:
        assert button not in html
    assert client.post(url(incident, "note"), {"text": "hi"}).status_code == 403
    assert (
        client.post(url(incident, "status"), {"status": "closed", "summary": "x"}).status_code
        == 403
    )
    incident.refresh_from_db()
    assert incident.status == "open"
    assert not IncidentEvent.objects.filter(incident=incident, kind="note").exists()


def test_the_on_call_viewer_runs_it(browser_for, incident, team, people):
    give_duty(people["viewer"], team, is_on_call=True)
    html = html_of(browser_for("viewer"), url(incident))
    for button in FORMS:
        assert button in html


def test_a_note_goes_on_the_timeline(browser_for, incident):
    client = browser_for("maintainer")
    response = client.post(url(incident, "note"), {"text": "rolled back, watching errors"})
    assert response.status_code == 302 and response["Location"] == url(incident)
    assert "maintainer: rolled back, watching errors" in html_of(client, url(incident))


def test_mitigate_then_close_with_a_summary(browser_for, incident):
    client = browser_for("maintainer")
    assert client.post(url(incident, "status"), {"status": "mitigated"}).status_code == 302
    incident.refresh_from_db()
    assert incident.status == "mitigated" and incident.mitigated_at is not None
    response = client.post(
        url(incident, "status"),
        {"status": "closed", "summary": "v3 leaked memory; canary caught it"},
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "closed" and incident.summary.startswith("v3 leaked memory")
    html = html_of(client, url(incident))
    assert "<h3>Summary</h3><p>v3 leaked memory; canary caught it</p>" in html


def test_closing_without_a_summary_is_refused_on_its_field(browser_for, incident):
    response = browser_for("maintainer").post(url(incident, "status"), {"status": "closed"})
    assert response.status_code == 422
    assert 'id="id_summary_error">closing an incident needs a summary' in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == "open"


def test_hand_over_needs_a_reason(browser_for, incident):
    client = browser_for("owner")
    response = client.post(url(incident, "owner"), {"owner": "viewer"})
    assert response.status_code == 422
    assert 'id="id_reason_error">say why the incident changes hands' in response.content.decode()
    response = client.post(url(incident, "owner"), {"owner": "viewer", "reason": "shift ends"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.owner.username == "viewer"


def test_an_outsider_sees_none_and_gets_404(browser_for, incident):
    client = browser_for("outsider")
    html = html_of(client, "/incidents/")
    assert not re.search(r'href="/incidents/\d+/"', html)
    assert "Your teams have had no incident." in html
    assert client.get(url(incident)).status_code == 404
    assert client.post(url(incident, "note"), {"text": "x"}).status_code == 404


def test_an_unknown_verb_is_404_and_get_is_405(browser_for, incident):
    client = browser_for("owner")
    assert client.post(url(incident, "delete")).status_code == 404
    assert client.get(url(incident, "note")).status_code == 405
