"""`{% when dt %}`: a <time> in UTC that portal.js rewrites to the reader's zone (and a
relative form); None is an em dash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from django.contrib.staticfiles import finders
from django.template import Context, Template

from tests.support.pages import html_of

TAG = Template("{% load frontend_tags %}{% when dt %}")


def render(dt: object) -> str:
    return TAG.render(Context({"dt": dt}))


def test_it_renders_a_time_in_utc():
    html = render(datetime(2026, 12, 2, 18, 4, 30, tzinfo=UTC))
    assert html == (
        '<time datetime="2026-12-02T18:04:30Z" class="when" title="2026-12-02 18:04:30 UTC">'
        "2026-12-02 18:04 UTC</time>"
    )


def test_it_converts_another_zone_to_utc():
    cet = timezone(timedelta(hours=1))
    html = render(datetime(2026, 12, 2, 19, 4, tzinfo=cet))
    assert 'datetime="2026-12-02T18:04:00Z"' in html and ">2026-12-02 18:04 UTC<" in html


def test_none_is_an_em_dash():
    assert render(None) == '<span class="when-none">—</span>'


def test_the_portal_script_rewrites_times_and_follows_htmx_swaps(browser_for):
    html = html_of(browser_for("viewer"), "/")
    assert "/static/frontend/portal.js" in html
    script = Path(finders.find("frontend/portal.js")).read_text(encoding="utf-8")
    for needle in ("time.when", "htmx:afterSwap", "htmx:load", "Intl.RelativeTimeFormat"):
        assert needle in script
