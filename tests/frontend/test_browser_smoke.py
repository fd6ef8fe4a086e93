"""One real-browser pass over the portal against a live server: log in, open the models list,
filter it live (HTMX), open a model. Skips without Chromium, but fails under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.factories import ModelVersionFactory, RegisteredModelFactory

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/tmp/frontend-smoke-model.png")
LIST_SCREENSHOT = Path("/tmp/frontend-smoke-models.png")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"CI=true but {CHROMIUM} is missing: the browser smoke test must run in CI")
    pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
def models_to_browse(team, people):  # type: ignore[no-untyped-def]
    scorer = RegisteredModelFactory(
        name="fraud-scorer",
        team=team,
        risk_tier="high",
        tags=["payments"],
        description="Scores card payments for fraud.",
    )
    for number in (1, 2):
        ModelVersionFactory(model=scorer, number=number, created_by=people["maintainer"])
    RegisteredModelFactory(name="churn-predictor", team=team, risk_tier="low")
    return scorer


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_person_logs_in_filters_models_and_opens_one(live_server, models_to_browse, monkeypatch):
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM work is all done above.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(10_000)
            page.goto(f"{live_server.url}/login/")
            page.get_by_label("Username").fill("owner")
            page.get_by_label("Password").fill("pw-for-tests-only")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Models")).to_be_visible()
            rows = page.locator("#model-results tbody tr")
            expect(rows).to_have_count(2)

            page.get_by_label("Search").fill("fraud")  # live filter: no submit pressed
            expect(rows).to_have_count(1)
            assert "q=fraud" in page.url  # hx-push-url keeps the filter shareable
            page.screenshot(path=str(LIST_SCREENSHOT), full_page=True)

            page.get_by_role("link", name="fraud-scorer").click()
            expect(page.get_by_role("heading", name="fraud-scorer")).to_be_visible()
            expect(page.locator("#versions tbody tr")).to_have_count(2)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
