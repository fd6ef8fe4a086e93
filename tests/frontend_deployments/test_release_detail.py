"""/releases/<id>/: the path with the current step, gates, timeline with evidence, approvals,
the buttons each person may press, and the live refresh that stops once terminal."""

from __future__ import annotations

import pytest

from deployments.models import Approval, Release, ReleaseState
from tests.factories import give_duty, put_in_state, release_of
from tests.support.pages import html_of

ANALYSIS_EVIDENCE = {
    "verdict": "pass",
    "weight": 10,
    "stable_stats": {"requests": 900.0, "errors": 2.0, "error_rate": 0.0022, "latency_p95": 0.12},
    "canary_stats": {"requests": 100.0, "errors": 0.0, "error_rate": 0.0, "latency_p95": 0.11},
    "slo_checks": {"error_rate": {"verdict": "pass", "value": 0.0, "limit": 0.01}},
    "comparisons": {"latency": {"verdict": "pass", "p_value": 0.41, "reason": "no shift"}},
}


@pytest.fixture
def release(deployment, versions, people, team) -> Release:  # type: ignore[no-untyped-def]
    give_duty(people["viewer"], team, is_approver=True)
    give_duty(people["owner"], team, is_approver=True)
    return release_of(deployment, versions[3], people["maintainer"])


def url(release: Release, verb: str = "") -> str:
    return f"/releases/{release.pk}/" + (f"{verb}/" if verb else "")


def buttons(html: str) -> set[str]:
    verbs = ("approve", "reject", "promote", "pause", "resume", "abort")
    return {v for v in verbs if f"/{v}/" in html}


def test_it_shows_the_path_with_the_current_step_and_the_gates(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    html = html_of(browser_for("viewer"), url(release))
    assert html.count('aria-current="step"') == 1
    current = html.split('aria-current="step"')[1].split("</li>")[0]
    assert "Canary analysis at 10% over 75s" in current
    assert (
        "Deploy v3 to staging (stable)" in html and "Traffic in production: v2 90%, v3 10%" in html
    )
    assert "Staging deploy and smoke test" in html and "Rollback rehearsal" in html
    assert "Canary analysis at 50%" in html


def test_analysis_numbers_are_a_table(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    release.steps.create(
        kind="analysis",
        plan_index=release.step_index,
        outcome="pass",
        actor_label="system:release-engine",
        reason="canary within SLO",
        evidence=ANALYSIS_EVIDENCE,
    )
    html = html_of(browser_for("viewer"), url(release))
    assert '<th scope="row">Requests</th><td>900</td><td>100</td>' in html
    assert '<th scope="row">error_rate</th><td>0</td><td>0.01</td><td>pass</td>' in html
    assert '<th scope="row">latency</th><td>0.41</td><td>pass</td>' in html
    assert "system:release-engine" in html and "canary within SLO" in html


def test_approvals_and_who_decided_are_shown(browser_for, release, people):
    Approval.objects.create(
        release=release, user=people["owner"], decision="approve", comment="lgtm"
    )
    html = html_of(browser_for("viewer"), url(release))
    assert "<strong>owner</strong> approved" in html and "lgtm" in html


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("viewer", {"approve", "reject"}),  # an approver
        ("owner", {"approve", "reject", "abort"}),  # approver and operator
        ("maintainer", {"abort"}),  # no approver duty: operates, never approves
        ("outsider", None),
    ],
)
def test_the_buttons_follow_role_and_state_while_awaiting_approval(
    browser_for, release, who, expected
):
    response = browser_for(who).get(url(release))
    if expected is None:
        assert response.status_code == 404
        return
    assert buttons(response.content.decode()) == expected


def test_operators_see_promote_and_pause_during_an_analysis(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    assert buttons(html_of(browser_for("maintainer"), url(release))) == {
        "promote",
        "pause",
        "abort",
    }
    put_in_state(release, ReleaseState.PAUSED, action="analyze")
    assert buttons(html_of(browser_for("maintainer"), url(release))) == {
        "promote",
        "resume",
        "abort",
    }


def test_it_polls_while_active_and_stops_once_terminal(browser_for, release):
    client = browser_for("viewer")
    live = client.get(url(release), HTTP_HX_REQUEST="true")
    html = live.content.decode()
    assert html.lstrip().startswith('<div id="release-live"') and "<html" not in html
    assert 'hx-trigger="every 3s"' in html
    put_in_state(release, ReleaseState.PROMOTED)
    done = html_of(client, url(release), HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in done and "Promoted" in done
    assert buttons(html_of(client, url(release))) == set()


def test_an_approver_approves_from_the_page(browser_for, release):
    client = browser_for("viewer")
    response = client.post(url(release, "approve"), {"note": "ship it"})
    assert response.status_code == 302 and response["Location"] == url(release)
    assert Release.objects.get(pk=release.pk).state == ReleaseState.APPROVED
    assert Approval.objects.get().comment == "ship it"
    assert "You approved release" in html_of(client, url(release))


@pytest.mark.parametrize("author", ["maintainer", "admin"])
def test_it_offers_the_author_no_approve_button_and_refuses_a_forced_post(
    browser_for, deployment, versions, people, team, author
):
    give_duty(people["maintainer"], team, is_approver=True)
    release = release_of(deployment, versions[3], people[author])
    client = browser_for(author)
    assert buttons(html_of(client, url(release))) == {"abort"}
    response = client.post(url(release, "approve"), {})
    assert response.status_code == 403
    assert "the author of a release cannot approve or reject it" in response.content.decode()
    assert not Approval.objects.exists()
    assert Release.objects.get(pk=release.pk).state == ReleaseState.AWAITING_APPROVAL


def test_a_wrong_state_is_409_with_the_reason(browser_for, release):
    response = browser_for("maintainer").post(url(release, "promote"), {})
    assert response.status_code == 409
    assert "cannot be promoted" in response.content.decode()
    assert Release.objects.get(pk=release.pk).state == ReleaseState.AWAITING_APPROVAL


def test_an_operator_pauses_and_aborts(browser_for, release):
    put_in_state(release, ReleaseState.STAGING)
    client = browser_for("maintainer")
    assert client.post(url(release, "pause"), {"note": "hold"}).status_code == 302
    assert Release.objects.get(pk=release.pk).state == ReleaseState.PAUSED


def test_a_viewer_cannot_operate(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    assert browser_for("viewer").post(url(release, "pause"), {}).status_code == 403
    assert Release.objects.get(pk=release.pk).state == ReleaseState.PROGRESSING


def test_bad_input_and_unknown_actions(browser_for, release):
    client = browser_for("owner")
    too_long = client.post(url(release, "approve"), {"note": "x" * 2001})
    assert too_long.status_code == 400 and not Approval.objects.exists()
    assert client.post(url(release, "explode"), {}).status_code == 404
    assert client.get(url(release, "approve")).status_code == 405


def test_an_outsider_cannot_act(browser_for, release):
    assert browser_for("outsider").post(url(release, "abort"), {}).status_code == 404
    assert Release.objects.get(pk=release.pk).state == ReleaseState.AWAITING_APPROVAL
