"""Journeys of releases in a real browser, the releases run by a real Celery worker: an approver
approves from the home page and watches the canary advance without reloading; an approver
rejects another version, which needs a reason; the on-call engineer rolls back with the button
and sees the traffic go back to the previous version in place.

Nothing is typed in the address bar after logging in: every page is reached by clicking."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from deployments import services
from deployments.models import Release, Rollback
from identity.audit import Actor
from tests.browser.browsing import (
    assert_not_reloaded,
    check_page,
    mark_document,
    screenshot,
)
from tests.browser.conftest import CANARY, member
from tests.deployments.conftest import World

pytestmark = pytest.mark.slow

RELEASE_SETTLES_S = 60


def split(scope: Any, *shares: str) -> Any:
    """The traffic bar (an image named for the split it draws) showing every share given, e.g.
    split(page, "v1 75%", "v2 25%")."""
    pattern = "".join(rf"(?=.*\b{re.escape(share)})" for share in shares)
    return scope.get_by_role("img", name=re.compile(rf"^Traffic split: {pattern}"))


def state(page: Any, label: str) -> Any:
    return page.get_by_role("heading", name=re.compile(rf"^State: {label}"))


def wait_for_state(release: Release, states: set[str], timeout: float = RELEASE_SETTLES_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        release.refresh_from_db()
        if release.state in states:
            return release.state
        time.sleep(0.2)
    raise AssertionError(f"release #{release.pk} is {release.state}, wanted one of {states}")


def test_an_approver_approves_from_home_and_watches_the_release_advance(
    live_engine: World, signed_in: Any, team: Any
) -> None:
    from playwright.sync_api import expect

    member(team, "ada", is_approver=True)
    release = live_engine.release(2)  # by the maintainer: one approval needed (medium risk)
    assert release.state == "awaiting_approval"

    page = signed_in("ada")
    check_page(page, "approver-home")
    approvals = page.get_by_role("region", name=re.compile("awaiting your approval"))
    approvals.get_by_role("link", name=f"#{release.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Release #{release.pk}")
    check_page(page, "release-awaiting-approval")

    page.get_by_label(re.compile(r"^Comment")).fill("v2 passed the offline evaluation")
    page.get_by_role("button", name="Approve v2").click()
    expect(page.get_by_text(f"You approved release #{release.pk}.")).to_be_visible()
    mark_document(page)

    # The live part moves by itself: the canary takes 25 %, then everything, then promoted.
    expect(split(page, "v1 75%", "v2 25%")).to_be_visible(timeout=30_000)
    expect(state(page, "Rolling out")).to_be_visible()
    current = page.get_by_role("listitem").filter(has_text="(current stage)")
    expect(current).to_contain_text("Canary 25%")
    screenshot(page, "release-canary", docs="release")
    expect(state(page, "Promoted")).to_be_visible(timeout=RELEASE_SETTLES_S * 1000)
    expect(split(page, "v2 100%")).to_be_visible()
    expect(current).to_have_count(0)  # nothing left to run
    assert_not_reloaded(page)
    check_page(page, "release-promoted")
    assert wait_for_state(release, {"promoted"}) == "promoted"
    assert live_engine.weights() == {2: 100}  # the route itself moved, not only the page


def test_an_approver_rejects_another_version_with_a_reason(
    live_engine: World, signed_in: Any, team: Any
) -> None:
    from playwright.sync_api import expect

    member(team, "ada", is_approver=True)
    release = live_engine.release(3)

    page = signed_in("ada")
    approvals = page.get_by_role("region", name=re.compile("awaiting your approval"))
    approvals.get_by_role("link", name=f"#{release.pk}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Release #{release.pk}")

    # No reason given: refused, the field says why, and nothing changes.
    page.get_by_role("button", name="Reject v3").click()
    expect(page.get_by_label(re.compile(r"^Comment"))).to_have_attribute("aria-invalid", "true")
    assert wait_for_state(release, {"awaiting_approval"}, timeout=1) == "awaiting_approval"
    check_page(page, "release-reject-without-reason")

    reason = "v3 drops the merchant-category feature the fraud team relies on"
    page.get_by_label(re.compile(r"^Comment")).fill(reason)
    page.get_by_role("button", name="Reject v3").click()
    expect(page.get_by_text(f"You rejected release #{release.pk}.")).to_be_visible()
    expect(state(page, "Rejected")).to_be_visible()
    expect(page.get_by_role("main").get_by_text(reason).first).to_be_visible()
    assert wait_for_state(release, {"rejected"}, timeout=1) == "rejected"
    assert live_engine.weights() == {1: 100}


def test_on_call_rolls_back_with_the_button_and_sees_the_traffic_move_back(
    live_engine: World, signed_in: Any, team: Any
) -> None:
    from playwright.sync_api import expect

    member(team, "olive", is_on_call=True)
    approver = member(team, "ada", is_approver=True)
    services.deployment_configure(  # a quick canary: this journey starts with v2 promoted
        actor=live_engine.maintainer,
        deployment=live_engine.deployment,
        strategy_params={**CANARY, "steps": [50, 100], "analysis_interval_seconds": 1},
    )
    second = live_engine.release(2)
    services.release_decide(
        actor=Actor.from_principal(approver), release=second, decision="approve"
    )
    assert wait_for_state(second, {"promoted"}) == "promoted"
    assert live_engine.weights() == {2: 100}

    page = signed_in("olive")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deployments").click()
    production = page.get_by_role("region", name=re.compile(r"^production"))
    production.get_by_role("link", name="fraud", exact=True).click()
    serving = page.get_by_role("region", name="Serving now")
    expect(split(serving, "v2 100%")).to_be_visible()
    check_page(page, "oncall-deployment")

    serving.get_by_role("link", name="Roll back to v1").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("to v1?")
    check_page(page, "oncall-rollback-confirm")
    page.get_by_label("Reason").fill("error budget burning since v2")
    mark_document(page)
    page.get_by_role("button", name="Roll back to v1").click()

    serving = page.get_by_role("region", name="Serving now")
    expect(split(serving, "v1 100%")).to_be_visible(timeout=30_000)
    expect(serving.get_by_text(re.compile("Rolled back to v1"))).to_be_visible()
    assert_not_reloaded(page)
    rollback = Rollback.objects.get(deployment=live_engine.deployment)
    assert (rollback.state, rollback.reason, rollback.actor_label) == (
        "done",
        "error budget burning since v2",
        "olive",
    )
    assert live_engine.weights() == {1: 100}
    check_page(page, "oncall-deployment-rolled-back")
