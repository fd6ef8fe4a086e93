"""/reviews/<ref>/: one item for its team's reviewers: the input summary (or that retention
deleted it), the prediction with its probabilities, the reason, the confidence, the model's
explanation, the SLA left, who holds it, the decide form (a select of the model's classes when
the prediction names them, JSON otherwise), the appeal and the history. Another team's item is
not found; a member without the reviewer duty is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from identity.audit import Actor
from reviews import appeals
from tests.factories import decided_item_of, queued_item_of
from tests.frontend_reviews.conftest import T0
from tests.support.pages import html_of


def url(item) -> str:  # type: ignore[no-untyped-def]
    return f"/reviews/{item.ref}/"


def test_a_reviewer_sees_everything_needed_to_decide(browser_as, rita, item):
    html = html_of(browser_as(rita), url(item))
    for text in (
        "credit-scorer in production",
        "v1",
        "<code>req-",
        "Confidence below the threshold",
        "0.600",
        "Held (final only after review)",
        "<dt>label</dt><dd>declined</dd>",
        "<td>declined</td>",
        "60.0 %",
        "40.0 %",
        "The model's explanation",
        "<dt>top features.income</dt><dd>-0.31</dd>",
        "<dt>income</dt><dd>52000</dd>",
        "<dt>region</dt><dd>north</dd>",
        "3 h 30 min left",
        "nobody holds it",
    ):
        assert text in html, text
    # The probabilities table lists the likeliest class first.
    assert html.index("<td>declined</td>") < html.index("<td>approved</td>")


def test_the_decide_form_offers_the_other_classes_of_a_classifier(browser_as, rita, item):
    html = html_of(browser_as(rita), url(item))
    form = html.split(f'action="/reviews/{item.ref}/decide/"')[1].split("</form>")[0]
    assert 'name="csrfmiddlewaretoken"' in form
    assert 'type="radio" name="decision" value="confirm"' in form
    assert 'type="radio" name="decision" value="override"' in form
    assert '<select name="output"' in form and '<option value="approved">approved</option>' in form
    assert '<option value="declined">' not in form  # overriding with it would be a confirmation
    assert 'name="reason"' in form
    assert f'action="/reviews/{item.ref}/claim/"' in html
    assert f'action="/reviews/{item.ref}/release/"' not in html


def test_a_prediction_without_classes_is_corrected_as_json(browser_as, rita, deployment):
    scored = queued_item_of(deployment, prediction={"score": 712.5}, confidence=None)
    html = html_of(browser_as(rita), url(scored))
    assert '<textarea name="output"' in html and "Corrected output (JSON)" in html
    assert "<dt>score</dt><dd>712.5</dd>" in html and "not given" in html


def test_a_purged_summary_says_retention_deleted_it(browser_as, rita, deployment):
    purged = queued_item_of(
        deployment, input_summary=None, summary_purged_at=T0 - timedelta(days=1)
    )
    html = html_of(browser_as(rita), url(purged))
    assert "Deleted after retention" in html and "52000" not in html


def test_the_holder_and_the_lease_are_shown(browser_as, rita, rob, item):
    browser_as(rob).post(f"{url(item)}claim/")
    html = html_of(browser_as(rita), url(item))
    assert "rob until" in html and "2025-06-02 10:30" in html
    assert "rob holds the item until" in html  # the reason there is no form
    assert f'action="/reviews/{item.ref}/decide/"' not in html


def test_a_breached_item_says_so(browser_as, rita, deployment):
    overdue = queued_item_of(deployment, sla_deadline=T0 - timedelta(minutes=45))
    assert "SLA breached 45 min ago" in html_of(browser_as(rita), url(overdue))


def test_a_decided_item_shows_the_decision_and_no_form(browser_as, rita, rob, deployment):
    done = decided_item_of(deployment, rob, decision="override", output={"label": "approved"})
    html = html_of(browser_as(rita), url(done))
    assert "Override" in html and "checked the income and the region" in html
    assert "<dt>Output: label</dt><dd>approved</dd>" in html and "rob" in html
    assert f'action="/reviews/{done.ref}/decide/"' not in html
    assert 'action="/reviews/next/"' in html


def test_an_appeal_shows_the_statement_and_the_appealed_decision(browser_as, rita, rob, deployment):
    done = decided_item_of(deployment, rob, decision="override", output={"label": "approved"})
    appeals.appeal(actor=Actor.system("tests"), item=done, statement="My income doubled in May.")
    html = html_of(browser_as(rita), url(done))
    for text in (
        "appeal (level 2)",
        "My income doubled in May.",
        "Override by rob",
        "<dt>Its output: label</dt><dd>approved</dd>",
        "system:tests",
        "<strong>Appealed</strong>",
    ):
        assert text in html, text
    assert f'action="/reviews/{done.ref}/decide/"' in html  # rita did not decide it


def test_the_first_decider_is_shown_the_refusal_instead_of_the_form(browser_as, rob, deployment):
    done = decided_item_of(deployment, rob)
    appeals.appeal(actor=Actor.system("tests"), item=done, statement="Please look again.")
    html = html_of(browser_as(rob), url(done))
    assert "an appeal goes to a different reviewer than the one who decided" in html
    assert f'action="/reviews/{done.ref}/decide/"' not in html
    assert f'action="/reviews/{done.ref}/claim/"' not in html


def test_the_history_says_who_did_what_when(browser_as, rita, item):
    client = browser_as(rita)
    client.post(f"{url(item)}claim/")
    html = html_of(client, url(item))
    history = html.split('id="review-history-title"')[1]
    assert "<strong>Claimed</strong> by rita" in history and "2025-06-02 10:00:00" in history


def test_the_page_is_never_cached(browser_as, rita, item):
    response = browser_as(rita).get(url(item))
    assert "no-store" in response["Cache-Control"]


def test_a_member_without_the_reviewer_duty_is_refused(browser_for, item):
    response = browser_for("owner").get(url(item))
    assert response.status_code == 403 and b"52000" not in response.content


@pytest.mark.parametrize("who", ["oscar", "outsider"])
def test_another_teams_people_get_404(browser_as, browser_for, oscar, item, who):
    client = browser_as(oscar) if who == "oscar" else browser_for(who)
    assert client.get(url(item)).status_code == 404


def test_an_unknown_item_is_not_found(browser_as, rita, db):
    assert browser_as(rita).get("/reviews/rv_nothing_like_this_here/").status_code == 404


def test_anonymous_is_sent_to_login(client, item):
    response = client.get(url(item))
    assert response.status_code == 302 and "/login/" in response["Location"]
