"""/reviews/: the signed-in reviewer's queue, earliest SLA deadline first, with the time left
(a breach said plainly), each item's deployment, model and version, track, reason and mode;
tabs for the items I hold, appeals and recent decisions; a deployment narrows it. Only the
owning team's reviewers see items; a member without the duty is told why."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from identity.audit import Actor
from reviews import appeals
from tests.factories import decided_item_of, queued_item_of, review_deployment_of
from tests.frontend_reviews.conftest import T0
from tests.support.pages import html_of


def row_of(html: str, ref: str) -> str:
    return html.split(f'href="/reviews/{ref}/"')[1].split("</tr>")[0]


def test_a_reviewer_sees_the_items_earliest_deadline_first(browser_as, rita, deployment, item):
    late = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=6), track="canary")
    early = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=20))
    html = html_of(browser_as(rita), "/reviews/")
    positions = [html.index(f'href="/reviews/{i.ref}/"') for i in (early, item, late)]
    assert positions == sorted(positions)
    row = row_of(html, item.ref)
    for cell in (
        "credit-scorer",
        "in production",
        "v1",
        '<span class="tag">stable</span>',
        "Confidence below the threshold",
        "held",
        "3 h 30 min left",
        "free",
        "Claim",
    ):
        assert cell in row, cell
    assert "20 min left" in row_of(html, early.ref)
    assert '<span class="tag">canary</span>' in row_of(html, late.ref)


def test_a_breached_item_says_so_plainly(browser_as, rita, deployment):
    overdue = queued_item_of(deployment, sla_deadline=T0 - timedelta(hours=1, minutes=5))
    row = row_of(html_of(browser_as(rita), "/reviews/"), overdue.ref)
    assert '<span class="badge severity-critical">breached 1 h 05 min ago</span>' in row


def test_an_appeal_is_marked_and_has_its_own_tab(browser_as, rita, rob, deployment, item):
    appealed = decided_item_of(deployment, rob)
    appeals.appeal(actor=Actor.system("tests"), item=appealed, statement="I earn more than that")
    client = browser_as(rita)
    assert '<span class="tag">appeal</span>' in row_of(html_of(client, "/reviews/"), appealed.ref)
    html = html_of(client, "/reviews/?view=appeals")
    assert f'href="/reviews/{appealed.ref}/"' in html
    assert f'href="/reviews/{item.ref}/"' not in html
    assert "Take next appeal" in html and 'name="level" value="2"' in html


def test_the_first_decider_cannot_claim_the_appeal_from_the_queue(browser_as, rob, deployment):
    appealed = decided_item_of(deployment, rob)
    appeals.appeal(actor=Actor.system("tests"), item=appealed, statement="please look again")
    row = row_of(html_of(browser_as(rob), "/reviews/?view=appeals"), appealed.ref)
    assert "Claim" not in row


def test_claimed_by_me_shows_only_what_i_hold(browser_as, rita, rob, deployment, item):
    mine = queued_item_of(deployment)
    theirs = queued_item_of(deployment)
    client = browser_as(rita)
    assert client.post(f"/reviews/{mine.ref}/claim/").status_code == 302
    assert browser_as(rob).post(f"/reviews/{theirs.ref}/claim/").status_code == 302
    html = html_of(client, "/reviews/?view=mine")
    assert f'href="/reviews/{mine.ref}/"' in html
    assert (
        f'href="/reviews/{theirs.ref}/"' not in html and f'href="/reviews/{item.ref}/"' not in html
    )
    assert "<strong>you</strong> until" in row_of(html, mine.ref)
    queue = html_of(client, "/reviews/")
    held = row_of(queue, theirs.ref)
    assert "rob until" in held and "Claim" not in held


def test_recently_decided_lists_decisions_newest_first(browser_as, rita, rob, deployment, item):
    older = decided_item_of(deployment, rob)
    newer = decided_item_of(deployment, rob, decision="override", output={"label": "approved"})
    type(older).objects.filter(pk=older.pk).update(decided_at=T0 - timedelta(days=2))
    type(newer).objects.filter(pk=newer.pk).update(decided_at=T0 - timedelta(hours=1))
    stale = decided_item_of(deployment, rob)
    type(stale).objects.filter(pk=stale.pk).update(decided_at=T0 - timedelta(days=40))
    html = html_of(browser_as(rita), "/reviews/?view=decided")
    assert html.index(newer.ref) < html.index(older.ref)
    assert stale.ref not in html and item.ref not in html
    assert "Override" in row_of(html, newer.ref) and "by rob" in row_of(html, newer.ref)
    assert "Take next" not in html


def test_a_deployment_narrows_the_queue(browser_as, rita, team, deployment, item):
    elsewhere = queued_item_of(review_deployment_of(team, name="churn"))
    client = browser_as(rita)
    html = html_of(client, f"/reviews/?deployment={deployment.pk}")
    assert f'href="/reviews/{item.ref}/"' in html and elsewhere.ref not in html
    assert "Show every deployment" in html
    assert f'name="deployment" value="{deployment.pk}"' in html  # "Take next" stays within it


def test_a_deployment_of_another_team_is_not_found(browser_as, rita, other_deployment):
    assert browser_as(rita).get(f"/reviews/?deployment={other_deployment.pk}").status_code == 404


def test_an_unknown_tab_is_bad_input_and_shows_the_queue(browser_as, rita, item):
    html = html_of(browser_as(rita), "/reviews/?view=everything", status=400)
    assert "Showing the queue instead" in html and f'href="/reviews/{item.ref}/"' in html


def test_the_queue_is_paginated(browser_as, rita, deployment):
    for minutes in range(30):
        queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=10 + minutes))
    client = browser_as(rita)
    first = html_of(client, "/reviews/")
    assert len(re.findall(r'<tr>\s*<td><a href="/reviews/rv_', first)) == 25
    assert "Page 1 of 2" in first and "30 results" in first
    second = html_of(client, "/reviews/?page=2")
    assert len(re.findall(r'<tr>\s*<td><a href="/reviews/rv_', second)) == 5


def test_a_member_without_the_reviewer_duty_is_told_why(browser_for, item):
    response = browser_for("viewer").get("/reviews/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "No review queue for you" in html and "reviewer duty" in html
    assert item.ref not in html


@pytest.mark.parametrize("view", ["", "?view=mine", "?view=appeals", "?view=decided"])
def test_another_teams_reviewer_sees_none_of_our_items(browser_as, oscar, rob, deployment, view):
    queued_item_of(deployment)
    decided_item_of(deployment, rob)
    html = html_of(browser_as(oscar), f"/reviews/{view}")
    assert 'href="/reviews/rv_' not in html


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/reviews/")
    assert response.status_code == 302 and "/login/" in response["Location"]


# Take next ------------------------------------------------------------------------------------


def test_take_next_claims_the_item_due_first_and_opens_it(browser_as, rita, deployment, item):
    first = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=5))
    client = browser_as(rita)
    response = client.post("/reviews/next/")
    assert response.status_code == 302 and response["Location"] == f"/reviews/{first.ref}/"
    first.refresh_from_db()
    assert first.status == "claimed" and first.claimed_by == rita
    assert f"You hold {first.ref}" in html_of(client, response["Location"])


def test_take_next_on_the_appeals_tab_takes_an_appeal(browser_as, rita, rob, deployment, item):
    appealed = decided_item_of(deployment, rob, sla_deadline=T0 + timedelta(hours=9))
    appeals.appeal(actor=Actor.system("tests"), item=appealed, statement="look again")
    response = browser_as(rita).post("/reviews/next/", {"level": "2"})
    assert response["Location"] == f"/reviews/{appealed.ref}/"
    item.refresh_from_db()
    assert item.status == "pending"


def test_take_next_with_nothing_waiting_says_so(browser_as, rita, deployment):
    client = browser_as(rita)
    response = client.post("/reviews/next/", {"deployment": deployment.pk})
    assert response.status_code == 302
    assert response["Location"] == f"/reviews/?deployment={deployment.pk}"
    assert "No item waits for you" in html_of(client, response["Location"])


def test_take_next_is_refused_to_a_member_without_the_duty(browser_for, item):
    response = browser_for("viewer").post("/reviews/next/")
    assert response.status_code == 403
    assert "No review queue for you" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "pending"


def test_take_next_answers_only_posts(browser_as, rita):
    assert browser_as(rita).get("/reviews/next/").status_code == 405
