"""The on-call pages: my teams' schedules with who is on call now and next, one schedule's
layers, overrides and next seven days (a gap shown as a gap), and the escalation policies with
their steps; nothing of another team."""

from __future__ import annotations

from datetime import timedelta

from core import clock
from tests.factories import layer_of, override_of, policy_of, schedule_of
from tests.support.pages import html_of

GAP = "nobody — alerts go to the next escalation step"


def test_the_list_says_who_is_on_call_now_and_next(browser_for, schedule):
    html = html_of(browser_for("viewer"), "/oncall/")
    row = html.split(f'href="/oncall/schedules/{schedule.pk}/"')[1].split("</tr>")[0]
    now_cell, next_cell = (
        row.split('<td data-label="On call now">')[1].split("<td ")[0],
        row.split('<td data-label="Next">')[1],
    )
    assert "<strong>owner</strong>" in now_cell and "until" in now_cell
    assert "<strong>maintainer</strong>" in next_cell and "from" in next_cell


def test_an_override_takes_the_shift_now(browser_for, schedule, people):
    now = clock.now()
    override_of(schedule, people["viewer"], now - timedelta(minutes=5), now + timedelta(hours=2))
    html = html_of(browser_for("viewer"), "/oncall/")
    row = html.split(f'href="/oncall/schedules/{schedule.pk}/"')[1]
    now_cell = row.split('<td data-label="On call now">')[1].split("</td>")[0]
    assert "<strong>viewer</strong>" in now_cell


def test_a_schedule_in_a_gap_says_nobody(browser_for, team, people):
    empty = schedule_of(team, name="daytime")
    layer_of(
        empty,
        [people["owner"]],
        rotation_start=clock.now() + timedelta(hours=5),
        shift_hours=24,
        name="later",
    )
    html = html_of(browser_for("viewer"), "/oncall/")
    row = html.split(f'href="/oncall/schedules/{empty.pk}/"')[1]
    now_cell = row.split('<td data-label="On call now">')[1].split("</td>")[0]
    assert GAP in now_cell


def test_the_schedule_page_shows_layers_overrides_and_seven_days(browser_for, schedule, people):
    now = clock.now()
    override_of(
        schedule, people["viewer"], now + timedelta(days=2), now + timedelta(days=2, hours=4)
    )
    html = html_of(browser_for("viewer"), f"/oncall/schedules/{schedule.pk}/")
    assert "<h3>daily <small" in html and "owner → maintainer" in html
    overrides = html.split('id="overrides-title"')[1].split("</section>")[0]
    assert '<td data-label="Who">viewer</td>' in overrides
    shifts = html.split('id="shifts-title"')[1].split("</section>")[0]
    assert shifts.count('class="oncall-shift') >= 8  # 7 daily shifts + the override's
    assert '<td data-label="Why">override</td>' in shifts
    assert '<td data-label="Why">daily layer</td>' in shifts
    assert GAP not in shifts


def test_a_gap_in_the_next_days_is_shown_as_a_gap(browser_for, team, people):
    nights = schedule_of(team, name="nights")
    layer_of(
        nights,
        [people["owner"]],
        rotation_start=clock.now() - timedelta(hours=1),
        shift_hours=24,
        name="first-two-days",
        ends_at=clock.now() + timedelta(days=2),
    )
    html = html_of(browser_for("viewer"), f"/oncall/schedules/{nights.pk}/")
    shifts = html.split('id="shifts-title"')[1].split("</section>")[0]
    assert 'class="oncall-shift oncall-gap"' in shifts
    assert 'class="oncall-gap-row"' in shifts and GAP in shifts


def test_policies_list_their_steps(browser_for, team, schedule, people):
    policy_of(
        team,
        [("schedule", schedule, 10), ("user", people["maintainer"], 15), ("team_owners", None, 5)],
        repeat=2,
    )
    html = html_of(browser_for("viewer"), "/oncall/policies/")
    steps = html.split('<ol class="steps">')[1].split("</ol>")[0]
    assert steps.index(f'href="/oncall/schedules/{schedule.pk}/"') < steps.index("maintainer")
    assert steps.index("maintainer") < steps.index("The team's owners")
    assert "waits 10 min" in steps and "waits 15 min" in steps
    assert "repeat 2 more times" in html and "team default" in html


def test_an_outsider_sees_no_schedule_or_policy_and_gets_404(browser_for, team, schedule):
    policy_of(team, [("schedule", schedule, 10)])
    client = browser_for("outsider")
    assert "primary" not in html_of(client, "/oncall/")
    assert "Your teams have no on-call schedule yet." in html_of(client, "/oncall/")
    assert "Your teams have no escalation policy yet." in html_of(client, "/oncall/policies/")
    assert client.get(f"/oncall/schedules/{schedule.pk}/").status_code == 404


def test_it_rejects_post(browser_for, schedule):
    client = browser_for("owner")
    for path in ("/oncall/", f"/oncall/schedules/{schedule.pk}/", "/oncall/policies/"):
        assert client.post(path).status_code == 405
