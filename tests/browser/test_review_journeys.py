"""Human review in a real browser: items reach the queue through the submission API of the live
server (as a serving process sends them, with the team's write token); a reviewer takes the one
due first and overrides it; the caller relays the subject's appeal through the API; a second
reviewer takes the appeal and decides it, finally."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from deployments.models import Deployment
from reviews.models import ReviewItem
from tests.browser.browsing import check_page
from tests.factories import make_token, review_deployment_of, reviewer_in, submission_body

pytestmark = pytest.mark.slow

STATEMENT = "My income doubled in May; the bank has the payslips."


def submit(base_url: str, token: str, deployment: Deployment) -> str:
    body = submission_body(deployment)
    answer = httpx.post(
        f"{base_url}/api/v1/reviews/",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return body["ref"]


@pytest.fixture
def queue(team: Any, live_server: Any, engine_worker: None) -> dict[str, Any]:
    """credit-scorer of team "fraud" under a review policy (every prediction, 4 h SLA), two
    reviewers of the team, and two items submitted over HTTP."""
    deployment = review_deployment_of(team)
    rita, sam = reviewer_in(team, "rita"), reviewer_in(team, "sam")
    _, token = make_token(team, ["write"], name="serving")
    refs = [submit(live_server.url, token, deployment) for _ in range(2)]
    return {"deployment": deployment, "rita": rita, "sam": sam, "token": token, "refs": refs}


def decide(page: Any, decision: str, reason: str, corrected: str | None = None) -> None:
    from playwright.sync_api import expect

    form = page.get_by_role("form", name="Confirm or override")
    form.get_by_label(decision, exact=True).check()
    if corrected is not None:
        form.get_by_label("Corrected class").select_option(corrected)
    form.get_by_label("Reason", exact=True).fill(reason)
    form.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("heading", name="Decision", exact=True)).to_be_visible()


def test_a_reviewer_takes_the_next_item_from_the_queue_and_overrides_it(
    queue: dict[str, Any], signed_in: Any
) -> None:
    from playwright.sync_api import expect

    page = signed_in("rita")
    check_page(page, "home-reviewer")
    reviews = page.get_by_role("region", name=re.compile("Review items you can take"))
    expect(reviews.get_by_role("link", name=queue["refs"][0])).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reviews").click()
    expect(page.get_by_role("heading", name="Reviews", level=1)).to_be_visible()
    check_page(page, "reviewer-queue")

    page.get_by_role("button", name="Take next", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Review")
    taken = ReviewItem.objects.get(claimed_by=queue["rita"])
    assert taken.ref in queue["refs"] and page.url.endswith(f"/reviews/{taken.ref}/")
    check_page(page, "reviewer-item")

    decide(page, "Override", "income is above the line", corrected="approved")
    expect(page.get_by_role("main").get_by_text("Override").first).to_be_visible()
    taken.refresh_from_db()
    assert (taken.status, taken.decision, taken.final_output, taken.decided_by) == (
        "decided",
        "override",
        {"label": "approved"},
        queue["rita"],
    )
    check_page(page, "reviewer-item-decided")


def test_a_second_reviewer_decides_an_appeal(
    queue: dict[str, Any], signed_in: Any, live_server: Any
) -> None:
    from playwright.sync_api import expect

    from identity.audit import Actor
    from reviews import decisions

    # Rita overrode the first item (through the domain, as the page does in the journey above);
    # the caller relays the subject's appeal over HTTP.
    ref = queue["refs"][0]
    item = ReviewItem.objects.get(ref=ref)
    rita = Actor.from_principal(queue["rita"])
    decisions.decide(
        actor=rita,
        item=item,
        decision="override",
        reason="income is above the line",
        corrected_output={"label": "approved"},
    )
    appeal = httpx.post(
        f"{live_server.url}/api/v1/reviews/{ref}/appeal",
        json={"statement": STATEMENT},
        headers={"Authorization": f"Bearer {queue['token']}"},
        timeout=10,
    )
    assert appeal.status_code == 201, appeal.text

    page = signed_in("sam")
    reviews = page.get_by_role("region", name=re.compile("Review items you can take"))
    reviews.get_by_role("link", name="Appeals").click()
    expect(page.get_by_role("main").get_by_role("link", name=ref)).to_be_visible()
    check_page(page, "reviews-appeals")
    page.get_by_role("button", name="Take next appeal").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(ref)
    expect(page.get_by_role("main").get_by_text(STATEMENT)).to_be_visible()
    check_page(page, "review-appeal")

    decide(page, "Confirm", "the payslips match the corrected output")
    expect(page.get_by_role("main").get_by_text(re.compile("final")).first).to_be_visible()
    item.refresh_from_db()
    assert (item.level, item.status, item.decision, item.decided_by, item.first_decided_by) == (
        2,
        "decided",
        "confirm",
        queue["sam"],
        queue["rita"],
    )
