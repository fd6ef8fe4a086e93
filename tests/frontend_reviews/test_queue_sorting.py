"""/reviews/ sorts (deadline, reason; decisions by time) with `aria-sort`, filters by the reason
an item is reviewed for, and answers a sort it does not offer with a 400 naming `sort`."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import decided_item_of, queued_item_of
from tests.frontend_reviews.conftest import T0
from tests.support.pages import html_of


def order(html: str, *items) -> list[int]:  # type: ignore[no-untyped-def]
    return [html.index(f'href="/reviews/{i.ref}/"') for i in items]


def test_the_queue_sorts_by_deadline_either_way_and_by_reason(browser_as, rita, deployment):
    early = queued_item_of(deployment, sla_deadline=T0 + timedelta(minutes=20), reason="sampled")
    late = queued_item_of(deployment, sla_deadline=T0 + timedelta(hours=3), reason="high_risk")
    client = browser_as(rita)
    first = html_of(client, "/reviews/")
    assert order(first, early, late) == sorted(order(first, early, late))
    assert 'aria-sort="ascending"' in first
    latest = html_of(client, "/reviews/?sort=-due")
    assert order(latest, late, early) == sorted(order(latest, late, early))
    by_reason = html_of(client, "/reviews/?sort=reason")
    assert order(by_reason, late, early) == sorted(order(by_reason, late, early))


def test_the_queue_filters_by_reason(browser_as, rita, deployment):
    sampled = queued_item_of(deployment, reason="sampled")
    risky = queued_item_of(deployment, reason="high_risk")
    html = html_of(browser_as(rita), "/reviews/", {"reason": "sampled"})
    assert f"/reviews/{sampled.ref}/" in html and f"/reviews/{risky.ref}/" not in html
    nothing = html_of(browser_as(rita), "/reviews/", {"reason": "class_listed"})
    assert "Nothing waits for review for this reason." in nothing


def test_decisions_sort_oldest_first_on_demand(browser_as, rita, rob, deployment):
    older = decided_item_of(deployment, rob)
    older.decided_at = T0 - timedelta(hours=2)
    older.save()
    newer = decided_item_of(deployment, rob)
    newer.decided_at = T0 - timedelta(hours=1)
    newer.save()
    client = browser_as(rita)
    newest = html_of(client, "/reviews/?view=decided")
    assert order(newest, newer, older) == sorted(order(newest, newer, older))
    oldest = html_of(client, "/reviews/?view=decided&sort=decided")
    assert order(oldest, older, newer) == sorted(order(oldest, older, newer))


def test_a_sort_the_queue_does_not_offer_is_400(browser_as, rita, deployment):
    item = queued_item_of(deployment)
    response = browser_as(rita).get("/reviews/", {"sort": "input_summary"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "sort: &#x27;input_summary&#x27; is not a sort of this list" in html
    assert f"/reviews/{item.ref}/" in html


def test_a_bad_reason_is_400(browser_as, rita, deployment):
    response = browser_as(rita).get("/reviews/", {"reason": "because"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
