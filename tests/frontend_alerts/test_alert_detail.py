"""/alerts/<id>/: the alert with its labels and evidence as readable fields, its timeline, its
notifications, the deployment's tiles and the rollback button; the response forms only for
whoever may respond (the assignee, the team's on-call, an owner)."""

from __future__ import annotations

import pytest

from alerts.models import AlertEvent, AlertEventKind, Delivery
from tests.factories import alert_of, give_duty
from tests.support.pages import html_of

RESPOND_BUTTONS = (
    ">Acknowledge</button>",
    ">Silence</button>",
    ">Reassign</button>",
    ">Add note</button>",
    ">Resolve</button>",
)


def url(alert) -> str:  # type: ignore[no-untyped-def]
    return f"/alerts/{alert.pk}/"


def test_it_shows_the_alert_labels_and_evidence_as_fields(browser_for, alert):
    html = html_of(browser_for("viewer"), url(alert))
    assert "<h1>Error budget burning fast on fraud-detector</h1>" in html
    assert '<span class="tag">severity=critical</span>' in html
    assert "<dt>burn rate.1h</dt><dd>15.23</dd>" in html
    assert "<dt>threshold</dt><dd>14.4</dd>" in html
    assert "{" not in html.split('id="alert-evidence-title"')[1].split("</section>")[0]
    assert f'href="/deployments/{alert.deployment_id}/"' in html
    assert "<dd>maintainer</dd>" in html  # the assignee


def test_it_shows_the_timeline_and_the_notifications(browser_for, alert, people):
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEventKind.REASSIGNED,
        actor_label="owner",
        text="she knows this model",
        data={"from": "owner", "to": "maintainer"},
    )
    Delivery.objects.create(
        alert=alert,
        change="fired",
        kind="email",
        recipient=f"user:{people['maintainer'].pk}",
        user=people["maintainer"],
        status="sent",
        attempts=1,
    )
    html = html_of(browser_for("viewer"), url(alert))
    timeline = html.split('id="alert-timeline-title"')[1].split("</section>")[0]
    assert "<strong>Fired</strong> by system:tests" in timeline
    assert "<strong>Reassigned</strong> by owner: she knows this model" in timeline
    assert "<dt>from</dt><dd>owner</dd><dt>to</dt><dd>maintainer</dd>" in timeline
    deliveries = html.split('id="alert-deliveries-title"')[1].split("</section>")[0]
    assert '<td data-label="To">maintainer</td>' in deliveries and "Sent</span>" in deliveries


def test_it_carries_the_deployment_tiles_and_the_rollback_button(browser_for, alert):
    html = html_of(browser_for("owner"), url(alert))
    assert '<div id="monitoring-live"' in html
    assert f'hx-get="/deployments/{alert.deployment_id}/monitoring/' in html
    assert '<span class="mon-label">Error rate</span>' in html
    assert f'href="/deployments/{alert.deployment_id}/rollback/">Roll back to v1' in html


def test_an_alert_without_a_deployment_has_no_tiles_and_no_rollback(browser_for, team):
    stray = alert_of(team, needs_triage=True, labels={"alertname": "DiskFull"})
    html = html_of(browser_for("owner"), url(stray))
    assert 'id="monitoring-live"' not in html and "Roll back" not in html
    assert "needs triage" in html


def test_a_viewer_sees_the_alert_but_no_action(browser_for, alert):
    html = html_of(browser_for("viewer"), url(alert))
    for button in (*RESPOND_BUTTONS, ">Open incident</button>", "Roll back to"):
        assert button not in html
    assert "Only the assignee, the team's on-call or an owner" in html


@pytest.mark.parametrize("who", ["maintainer", "owner"])  # the assignee, an owner
def test_the_assignee_and_owners_get_the_response_forms(browser_for, alert, who):
    html = html_of(browser_for(who), url(alert))
    for button in RESPOND_BUTTONS:
        assert button in html
    assert f'action="/alerts/{alert.pk}/acknowledge/"' in html
    assert ">Open incident</button>" in html


def test_the_on_call_viewer_gets_the_response_forms(browser_for, alert, team, people):
    give_duty(people["viewer"], team, is_on_call=True)
    html = html_of(browser_for("viewer"), url(alert))
    for button in RESPOND_BUTTONS:
        assert button in html
    assert ">Open incident</button>" in html


def test_a_maintainer_who_is_not_the_assignee_may_open_an_incident_only(browser_for, alert, people):
    type(alert).objects.filter(pk=alert.pk).update(assignee=people["owner"])
    html = html_of(browser_for("maintainer"), url(alert))
    assert ">Acknowledge</button>" not in html
    assert ">Open incident</button>" in html


def test_a_resolved_alert_offers_no_response(browser_for, team, deployment):
    done = alert_of(team, deployment=deployment, status="resolved")
    html = html_of(browser_for("owner"), url(done))
    for button in RESPOND_BUTTONS:
        assert button not in html


def test_the_reassign_form_offers_the_team_members(browser_for, alert):
    html = html_of(browser_for("owner"), url(alert))
    form = html.split(f'action="/alerts/{alert.pk}/reassign/"')[1].split("</form>")[0]
    for name in ("owner", "maintainer", "viewer"):
        assert f'<option value="{name}">{name}</option>' in form
    assert "outsider" not in form


def test_an_outsider_gets_404(browser_for, alert):
    assert browser_for("outsider").get(url(alert)).status_code == 404


def test_an_unknown_alert_is_404(browser_for, db, people):
    assert browser_for("owner").get("/alerts/999999/").status_code == 404


def test_whoever_is_paged_finds_acknowledge_and_open_incident_first(browser_for, alert):
    html = html_of(browser_for("maintainer"), url(alert))
    respond = html.index('id="alert-actions"')
    assert respond < html.index('id="alert-facts-title"')  # before the facts, at phone width too
    assert '<button id="ack-button" type="submit" class="button">Acknowledge</button>' in html
    assert 'id="open-incident-button" type="submit"' in html
    assert html.index('id="ack-button"') < html.index('id="open-incident-button"')
    assert 'aria-label="Breadcrumb"' in html and 'id="rollback-button"' in html
