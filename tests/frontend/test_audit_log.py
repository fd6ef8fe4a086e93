"""The audit log page: visible events only, AuditEventFilterSet filters, diff, paging."""

from __future__ import annotations

from urllib.parse import urlencode

from django.utils import timezone

from frontend import views
from identity.models import AuditEvent
from tests.support.pages import html_of


def add_event(team, action="model.update", **fields):  # type: ignore[no-untyped-def]
    defaults = {
        "actor_type": "user",
        "actor_id": "1",
        "actor_label": "owner",
        "action": action,
        "target_type": "registry.registeredmodel",
        "target_id": "7",
        "target_label": "fraud-scorer",
        "team_id": team.pk,
        "before": {"risk_tier": "medium", "description": "old"},
        "after": {"risk_tier": "high", "description": "old"},
        "request_id": "req-123abc",
    }
    return AuditEvent.objects.create(**{**defaults, **fields})


def test_it_shows_actor_action_target_diff_and_request_id(browser_for, team):
    add_event(team)
    response = browser_for("viewer").get("/audit/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "owner" in html and "<code>model.update</code>" in html and "fraud-scorer" in html
    assert (
        '<tr class="changed"><th scope="row">risk_tier</th><td><del>medium</del></td>'
        "<td><ins>high</ins></td></tr>" in html
    )
    assert '<tr><th scope="row">description</th>' in html  # unchanged field, not flagged
    assert 'href="?request_id=req-123abc"' in html


def test_it_hides_events_of_other_teams(browser_for, team, other_team):
    add_event(team, target_label="mine")
    add_event(other_team, target_label="theirs")
    html = html_of(browser_for("viewer"), "/audit/")
    assert "mine" in html and "theirs" not in html


def test_it_filters_by_action_actor_target_time_and_request(browser_for, team):
    add_event(team, action="token.create", actor_label="alice", request_id="r1")
    between = timezone.now()
    add_event(
        team, action="alias.set", actor_label="bob", target_label="x@champion", request_id="r2"
    )
    client = browser_for("viewer")

    def actions(query: str) -> list[str]:
        html = html_of(client, f"/audit/?{query}")
        return [a for a in ("token.create", "alias.set") if f"<code>{a}</code>" in html]

    assert actions("action=alias") == ["alias.set"]
    assert actions("actor=ALI") == ["token.create"]
    assert actions("target=champion") == ["alias.set"]
    assert actions(urlencode({"occurred_after": between.isoformat()})) == ["alias.set"]
    assert actions(urlencode({"occurred_before": between.isoformat()})) == ["token.create"]
    assert actions("request_id=r1") == ["token.create"]


def test_it_paginates(browser_for, team):
    for i in range(30):
        add_event(team, target_label=f"target-{i:02d}")
    client = browser_for("viewer")
    first = html_of(client, "/audit/")
    assert "target-29" in first and "target-04" not in first
    assert "30 results" in first
    assert "target-04" in html_of(client, "/audit/?page=2")


def test_a_bad_filter_is_reported_and_shows_nothing(browser_for, team):
    add_event(team)
    response = browser_for("viewer").get("/audit/?occurred_after=yesterday-ish")
    assert response.status_code == 400
    assert b"Enter a valid date/time" in response.content
    assert b"<code>model.update</code>" not in response.content


def test_it_rejects_post(browser_for, team):
    assert browser_for("viewer").post("/audit/").status_code == 405


def test_past_the_count_cap_it_says_more_than_and_still_pages(browser_for, team, monkeypatch):
    monkeypatch.setattr(views, "COUNT_CAP", 30)
    for i in range(60):
        add_event(team, target_label=f"target-{i:02d}")
    client = browser_for("viewer")
    first = html_of(client, "/audit/")
    assert "More than 30 results" in first and "Page 1</span>" in first and 'rel="next"' in first
    last = html_of(client, "/audit/?page=3")  # counted as far as the page asked for: exact
    assert "60 results" in last and "Page 3 of 3" in last and "target-00" in last


def test_a_deep_page_shows_the_same_rows_as_a_shallow_one_would(browser_for, team, monkeypatch):
    for i in range(30):
        add_event(team, target_label=f"target-{i:02d}")
    client = browser_for("viewer")

    def events(html: str) -> str:
        return html[html.index('<section class="card">') :]

    shallow = events(html_of(client, "/audit/?page=2"))
    monkeypatch.setattr(views, "DEFERRED_JOIN_FROM", 1)  # page 2 finds its ids first
    deep = events(html_of(client, "/audit/?page=2"))
    assert deep == shallow and "target-04" in deep and "target-05" not in deep
