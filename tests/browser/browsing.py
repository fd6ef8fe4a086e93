"""What a browser journey does besides clicking: log in, check a page with axe-core, check that a
phone-width page does not scroll sideways, and keep screenshots of the pages it passed through.

Locators are roles, labels and visible text, never CSS classes or ids, so a journey survives a
change of markup that a person would not notice. Debian's Chromium only: never a downloaded
browser."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Test artifacts (git-ignored with var/), and the two the README shows (committed).
SCREENSHOTS = ROOT / "var" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "pw-for-tests-only"  # tests.factories.UserFactory's
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# axe-core's rules for WCAG 2.0 and 2.1, levels A and AA; a journey fails on the serious and
# critical ones (minor and moderate ones are left to review).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = {"serious", "critical"}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"CI=true but {CHROMIUM} is missing: the browser journeys must run in CI")
    pytest.skip(f"{CHROMIUM} is not installed")


def log_in(page: Any, base_url: str, username: str) -> None:
    """Sign in from the login page, the one URL a person types; lands on the home page."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/")


# While axe reads a page, its live parts hold still: an HTMX poll that swapped a part in the
# middle of the run would hand axe detached nodes. Polling goes on afterwards.
HOLD_LIVE_PARTS = """(hold) => {
  if (!window.__axeHold) {
    window.__axeHold = true;
    document.addEventListener("htmx:beforeRequest", (e) => {
      if (window.__axeRunning) e.preventDefault();
    });
    document.addEventListener("htmx:beforeSwap", (e) => {
      if (window.__axeRunning) e.detail.shouldSwap = false;
    });
  }
  window.__axeRunning = hold;
}"""


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0/2.1 A and AA violations of the page as it is now (every impact)."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}
    page.evaluate(HOLD_LIVE_PARTS, True)
    try:
        return Axe().run(page, options=options).response["violations"]
    finally:
        page.evaluate(HOLD_LIVE_PARTS, False)


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {target}: {summary[:300]}")
    return "\n".join(lines)


def assert_accessible(page: Any, name: str) -> None:
    """Fail listing every serious or critical axe-core violation of the page (rule, help, the
    elements concerned)."""
    found = [v for v in axe_violations(page) if v.get("impact") in FAILING_IMPACTS]
    if found:
        pytest.fail(f"axe-core on {name} ({page.url}):\n{describe(found)}", pytrace=False)


def assert_no_horizontal_scroll(page: Any, name: str) -> None:
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    if scroll_width > width:
        wide = page.evaluate(
            """(width) => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > width + 1)
                .slice(0, 8)
                .map((e) => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))""",
            width,
        )
        pytest.fail(
            f"{name} scrolls sideways at {width} px: {scroll_width} px wide; widest: {wide}",
            pytrace=False,
        )


def screenshot(page: Any, name: str, *, docs: str | None = None) -> Path:
    """The viewport as var/screenshots/<name>.png; with `docs`, also docs/screenshots/<docs>.png
    (the README's pictures, kept current by the journeys that take them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path))
    if docs is not None:
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{docs}.png")
    return path


def check_page(page: Any, name: str, *, phone: bool = False) -> None:
    """The checks every main page passes: axe-core, no sideways scroll on a phone, and a
    screenshot kept as a test artifact."""
    page.wait_for_load_state("load")
    assert_accessible(page, name)
    if phone:
        assert_no_horizontal_scroll(page, name)
    screenshot(page, f"{name}-phone" if phone else name)


def mark_document(page: Any) -> None:
    """Mark the document, so `assert_not_reloaded` can tell a live update from a reload."""
    page.evaluate("window.__journeyMark = 'still-here'")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.__journeyMark") == "still-here", "the page was reloaded"
