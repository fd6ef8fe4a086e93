"""/releases/<id>/: the path drawn as stages with their states and evidence links, the traffic bar,
the charts of canary against stable from the stored evidence, the running and proposed versions
side by side for a decision, gates and a timeline that names who did what, the buttons each
person may press, and the live refresh that stops once terminal."""

from __future__ import annotations

import re
from typing import Any

import pytest

from deployments.models import Approval, Release, ReleaseState
from registry.models import ModelVersion
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    give_duty,
    put_in_state,
    release_of,
)
from tests.support.pages import html_of

ANALYSIS_EVIDENCE = {
    "verdict": "pass",
    "weight": 10,
    "stable_stats": {"requests": 900.0, "errors": 2.0, "error_rate": 0.0022, "latency_p95": 0.12},
    "canary_stats": {"requests": 100.0, "errors": 0.0, "error_rate": 0.0, "latency_p95": 0.11},
    "slo_checks": {"error_rate": {"verdict": "pass", "value": 0.0, "limit": 0.01}},
    "comparisons": {"latency": {"verdict": "pass", "p_value": 0.41, "reason": "no shift"}},
}


def window(weight: int, stable: tuple[float, float], canary: tuple[float, float], **extra: Any):  # type: ignore[no-untyped-def]
    """The evidence of one analysis window as engine.steps._analyze stores it: (error rate, p95
    in seconds) per side, the SLO checks with their limits."""
    return {
        "verdict": "pass",
        "weight": weight,
        "stable": {"model": "fraud-detector", "version": 2},
        "canary": {"model": "fraud-detector", "version": 3},
        "stable_stats": {"requests": 900.0, "error_rate": stable[0], "latency_p95": stable[1]},
        "canary_stats": {"requests": 100.0, "error_rate": canary[0], "latency_p95": canary[1]},
        "slo_checks": {
            "error_rate": {"verdict": "pass", "value": canary[0], "limit": 0.01},
            "latency_p95": {"verdict": "pass", "value": canary[1], "limit": 0.5},
        },
        **extra,
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


def stage(html: str, key: str) -> str:
    """The markup of one stage of the drawn path."""
    return html.split(f'<li id="stage-{key}"')[1].split("</details>")[0].split('<li id="stage-')[0]


def stage_status(html: str, key: str) -> str:
    return re.search(r'<span class="stage-status">([^<]+)', stage(html, key)).group(1)  # type: ignore[union-attr]


def analyse(release: Release, evidence: dict[str, Any], outcome: str = "pass") -> Any:
    return release.steps.create(
        kind="analysis",
        plan_index=release.step_index,
        outcome=outcome,
        actor_label="system:release-engine",
        reason="canary within SLO",
        evidence=evidence,
    )


# The path --------------------------------------------------------------------------------------


def test_the_path_is_drawn_as_stages_waiting_for_an_approver(browser_for, release):
    html = html_of(browser_for("viewer"), url(release))
    keys = re.findall(r'<li id="stage-([\w-]+)" class="stage stage-(\w+)"', html)
    assert [k for k, _ in keys] == [
        "registry",
        "approval",
        "staging",
        "rehearsal",
        "deploy",
        "traffic-9",
        "traffic-11",
        "traffic-13",
        "promote-14",
    ]
    assert dict(keys)["registry"] == "done" and dict(keys)["approval"] == "waiting"
    assert {s for k, s in keys[2:]} == {"pending"}
    assert html.count('aria-current="step"') == 1
    approval = stage(html, "approval")
    assert 'aria-current="step"' in approval and stage_status(html, "approval") == "Waiting"
    assert "Waiting for approval by an approver of team Fraud other than the author" in approval
    assert "0 of 1 approval" in approval
    assert "Canary 10%" in html and "Canary 50%" in html and "Production: v3 stable" in html
    assert stage_status(html, "staging") == "Not started"


def test_a_running_canary_is_the_current_stage_with_the_stages_before_it_done(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    html = html_of(browser_for("viewer"), url(release))
    assert html.count('aria-current="step"') == 1
    current = stage(html, "traffic-9")
    assert 'aria-current="step"' in current and stage_status(html, "traffic-9") == "Running"
    assert "Now: Canary analysis at 10% over 75s" in current
    assert 'href="#gate-analysis-10"' in current
    for done in ("registry", "staging", "rehearsal", "deploy"):
        assert stage_status(html, done) == "Done", done
    assert stage_status(html, "traffic-11") == "Not started"
    # Each stage lists its plan steps, a click away.
    assert "Deploy v3 to staging (stable)" in stage(html, "staging")
    assert "Traffic in production: v2 90%, v3 10%" in current
    assert 'id="release-now"' in html and "Canary 10%: running." in html


def test_a_paused_release_says_who_it_waits_for(browser_for, release):
    put_in_state(release, ReleaseState.PAUSED, action="analyze")
    Release.objects.filter(pk=release.pk).update(status_reason="analysis inconclusive: no data")
    html = html_of(browser_for("viewer"), url(release))
    assert stage_status(html, "traffic-9") == "Waiting"
    assert "waiting for an operator of team Fraud to resume, promote or abort" in stage(
        html, "traffic-9"
    )


def test_a_failed_release_marks_the_stage_it_failed_at(browser_for, release):
    put_in_state(release, ReleaseState.ROLLED_BACK, action="analyze")
    Release.objects.filter(pk=release.pk).update(status_reason="analysis failed: error rate")
    html = html_of(browser_for("viewer"), url(release))
    assert stage_status(html, "traffic-9") == "Failed"
    assert 'aria-current="step"' in stage(html, "traffic-9")
    assert stage_status(html, "traffic-11") == "Skipped"
    assert "hx-trigger" not in html  # terminal: no polling


def test_each_stage_links_to_its_evidence_in_the_timeline(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    step = analyse(release, ANALYSIS_EVIDENCE)
    html = html_of(browser_for("viewer"), url(release))
    assert f'href="#step-{step.pk}"' in stage(html, "traffic-9")
    assert f'<tr id="step-{step.pk}">' in html
    assert '<tr id="gate-analysis-10">' in html
    created = release.steps.get(kind="create")
    assert f'href="#step-{created.pk}"' in stage(html, "approval")


def test_a_rejected_release_shows_who_rejected_and_why(browser_for, release):
    response = browser_for("viewer").post(url(release, "reject"), {"comment": "schema drift"})
    assert response.status_code == 302
    html = html_of(browser_for("maintainer"), url(release))
    assert stage_status(html, "approval") == "Failed"
    assert "Rejected by viewer: schema drift" in stage(html, "approval")
    assert stage_status(html, "staging") == "Skipped"
    reject = release.steps.get(kind="reject")
    row = html.split(f'<tr id="step-{reject.pk}">')[1].split("</tr>")[0]
    assert "<strong>viewer</strong>" in row and "schema drift" in row


# The traffic bar ------------------------------------------------------------------------------


def test_the_traffic_split_is_a_bar_in_the_live_part(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    Release.objects.filter(pk=release.pk).update(traffic={"weights": {"2": 80, "3": 20}})
    live = html_of(browser_for("viewer"), url(release), HTTP_HX_REQUEST="true")
    assert live.lstrip().startswith('<div id="release-live"')
    assert 'role="img" aria-label="Traffic split: v2 80%, v3 20%"' in live
    # Stable ids per version, so a refresh animates each segment's width.
    assert (
        '<span class="traffic-seg" id="release-traffic-v2" style="width: 80%">v2 80%</span>' in live
    )
    assert (
        '<span class="traffic-seg traffic-seg-canary" id="release-traffic-v3" '
        'style="width: 20%">v3 20%</span>'
    ) in live
    assert '<span class="tag">v2 80%</span><span class="tag">v3 20%</span>' in live


def test_a_narrow_segment_is_named_under_the_bar(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    Release.objects.filter(pk=release.pk).update(traffic={"weights": {"2": 95, "3": 5}})
    html = html_of(browser_for("viewer"), url(release))
    assert 'id="release-traffic-v3" style="width: 5%"></span>' in html
    assert '<span class="tag">v3 5%</span>' in html


# The charts -----------------------------------------------------------------------------------


def test_charts_of_canary_against_stable_come_from_the_stored_evidence(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    analyse(release, window(10, (0.0022, 0.120), (0.0040, 0.150)), outcome="inconclusive")
    analyse(release, window(10, (0.0020, 0.110), (0.0030, 0.130)))
    html = html_of(browser_for("viewer"), url(release), HTTP_HX_REQUEST="true")
    charts = html.split('id="analysis-charts"')[1].split('aria-labelledby="gates-title"')[0]
    assert '<figure class="chart-figure" id="chart-error-rate">' in charts
    assert '<figure class="chart-figure" id="chart-latency-p95">' in charts
    assert "chart-drift" not in charts  # no window judged drift
    assert '<title id="chart-error-rate-title">Error rate: canary v3 against stable v2</title>' in (
        charts
    )
    # Two series told apart by dash and marker, and the SLO line.
    latency = charts.split('id="chart-latency-p95"')[1]
    assert '<g class="chart-series chart-stable"><polyline points=' in latency
    assert 'stroke-dasharray="7 4"' in latency and "<rect " in latency
    assert "SLO limit 500 ms" in latency
    # The numbers behind the chart, window by window.
    table = latency.split("<tbody>")[1].split("</tbody>")[0]
    assert "<td>120 ms</td><td>150 ms</td><td>500 ms</td><td>inconclusive</td>" in table
    assert "10% (2)" in table and "<td>110 ms</td><td>130 ms</td>" in table
    error_rate = charts.split('id="chart-error-rate"')[1].split("</figure>")[0]
    assert "<td>0.22%</td><td>0.4%</td><td>1%</td>" in error_rate


def test_a_drift_chart_appears_where_drift_was_judged(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    drift = {"status": "ok", "psi_max": 0.04, "js_max": None, "thresholds": {"alert": 0.25}}
    analyse(release, window(10, (0.0, 0.1), (0.0, 0.1), drift=drift))
    html = html_of(browser_for("viewer"), url(release))
    chart = html.split('id="chart-drift"')[1].split("</figure>")[0]
    assert "Drift: canary v3 against its baseline profile" in chart
    assert "PSI alert limit 0.25" in chart and "<td>0.04</td>" in chart


def test_before_any_window_it_says_when_charts_appear(browser_for, release):
    html = html_of(browser_for("viewer"), url(release))
    assert "No analysis window has ended for this release yet" in html


def test_analysis_numbers_are_a_table(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    analyse(release, ANALYSIS_EVIDENCE)
    html = html_of(browser_for("viewer"), url(release))
    assert '<th scope="row">Requests</th><td>900</td><td>100</td>' in html
    assert '<th scope="row">error_rate</th><td>0</td><td>0.01</td><td>pass</td>' in html
    assert '<th scope="row">latency</th><td>0.41</td><td>pass</td>' in html
    assert "system:release-engine" in html and "canary within SLO" in html


# Deciding: the two versions side by side ------------------------------------------------------


@pytest.fixture
def proposed(deployment, versions, people, team) -> Release:  # type: ignore[no-untyped-def]
    """v4 of the model, changed in configuration, metrics and baseline against the running v2."""
    give_duty(people["viewer"], team, is_approver=True)
    ModelVersion.objects.filter(pk=versions[2].pk).update(
        config={"threshold": 0.5, "batch": 16},
        training_metrics={"auc": 0.91},
        baseline_profile={
            "features": {"age": {"type": "numeric", "bin_edges": [0, 50, 100], "counts": [6, 4]}}
        },
    )
    v4 = ModelVersionFactory(
        model=deployment.model,
        number=4,
        config={"threshold": 0.7, "batch": 16},
        training_metrics={"auc": 0.93},
        baseline_profile={
            "features": {
                "age": {"type": "numeric", "bin_edges": [0, 50, 100], "counts": [60, 40]},
                "plan": {"type": "categorical", "frequencies": {"basic": 3, "pro": 1}},
            }
        },
    )
    return release_of(deployment, v4, people["maintainer"])


def diff_row(html: str, field: str) -> str:
    return html.split(f'<th scope="row">{field}</th>')[1].split("</tr>")[0]


def test_an_approver_sees_the_running_and_the_proposed_version_side_by_side(
    browser_for, proposed, versions
):
    html = html_of(browser_for("viewer"), url(proposed))
    decision = html.split('id="release-decision"')[1].split("</section>")[0]
    assert "Your decision: replace v2 with v4 in production" in decision
    assert '<th scope="col">Running v2</th><th scope="col">Proposed v4</th>' in decision
    assert '<tr class="changed"><th scope="row">artifact digest</th>' in decision
    assert versions[2].artifact_digest in diff_row(decision, "artifact digest")
    assert '<strong class="diff-mark">Changed</strong>' in diff_row(decision, "threshold")
    assert '<code class="wrap">0.5</code>' in diff_row(decision, "threshold")
    assert '<code class="wrap">0.7</code>' in diff_row(decision, "threshold")
    assert '<span class="muted">same</span>' in diff_row(decision, "batch")
    assert "0.93" in diff_row(decision, "auc")
    assert "numeric, 2 bins, 100 values, range 0 to 100" in diff_row(decision, "feature age")
    plan = diff_row(decision, "feature plan")
    assert '<span class="muted">absent</span>' in plan and "categorical, 2 categories" in plan
    assert "properties.age.type" in decision  # the input schema, one row per field
    assert "fields differ</strong> between v2 and v4" in decision
    assert "configuration threshold" in decision  # named in the summary of what changed
    assert 'id="approve-button"' in decision and ">Approve v4</button>" in decision
    assert 'id="reject-button"' in decision and ">Reject v4</button>" in decision


def test_people_who_cannot_decide_still_see_what_changes(browser_for, proposed):
    html = html_of(browser_for("maintainer"), url(proposed))
    assert 'id="release-decision"' not in html
    assert '<details id="version-diff" open>' in html
    assert '<strong class="diff-mark">Changed</strong>' in html


# Actions --------------------------------------------------------------------------------------


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
    assert 'id="release-stages"' in html and 'id="release-traffic"' in html
    put_in_state(release, ReleaseState.PROMOTED)
    done = html_of(client, url(release), HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in done and "Promoted" in done
    assert buttons(html_of(client, url(release))) == set()
    assert not {s for s in re.findall(r'class="stage stage-(\w+)"', done)} - {"done"}


def test_an_approver_approves_from_the_page_with_an_optional_comment(browser_for, release):
    client = browser_for("viewer")
    response = client.post(url(release, "approve"), {"comment": "ship it"})
    assert response.status_code == 302 and response["Location"] == url(release)
    assert Release.objects.get(pk=release.pk).state == ReleaseState.APPROVED
    assert Approval.objects.get().comment == "ship it"
    html = html_of(client, url(release))
    assert "You approved release" in html
    approval = release.steps.get(kind="approval")
    assert "<strong>viewer</strong>" in html.split(f'<tr id="step-{approval.pk}">')[1]


def test_an_approval_needs_no_comment(browser_for, release):
    assert browser_for("viewer").post(url(release, "approve"), {}).status_code == 302
    assert Release.objects.get(pk=release.pk).state == ReleaseState.APPROVED


@pytest.mark.parametrize("comment", ["", "   "])
def test_a_rejection_without_a_reason_is_refused_on_the_field(browser_for, release, comment):
    response = browser_for("viewer").post(url(release, "reject"), {"comment": comment})
    assert response.status_code == 422
    html = response.content.decode()
    form = html.split('id="release-decision"')[1].split("</section>")[0]
    error = '<small class="error" id="id_comment_error">is required to reject a release</small>'
    assert error in form
    assert 'aria-invalid="true"' in form
    assert not Approval.objects.exists()
    assert Release.objects.get(pk=release.pk).state == ReleaseState.AWAITING_APPROVAL
    assert not release.steps.filter(kind="reject").exists()


def test_a_rejection_with_a_reason_ends_the_release(browser_for, release):
    response = browser_for("viewer").post(url(release, "reject"), {"comment": "wrong data"})
    assert response.status_code == 302
    assert Release.objects.get(pk=release.pk).state == ReleaseState.REJECTED
    assert Approval.objects.get().comment == "wrong data"


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


def test_an_operator_pauses_with_a_reason_named_in_the_timeline(browser_for, release):
    put_in_state(release, ReleaseState.STAGING)
    client = browser_for("maintainer")
    assert client.post(url(release, "pause"), {"reason": "hold"}).status_code == 302
    assert Release.objects.get(pk=release.pk).state == ReleaseState.PAUSED
    pause = release.steps.get(kind="pause")
    row = html_of(client, url(release)).split(f'<tr id="step-{pause.pk}">')[1].split("</tr>")[0]
    assert "<strong>maintainer</strong>" in row and "hold" in row


def test_a_viewer_cannot_operate(browser_for, release):
    put_in_state(release, ReleaseState.PROGRESSING, action="analyze")
    assert browser_for("viewer").post(url(release, "pause"), {}).status_code == 403
    assert Release.objects.get(pk=release.pk).state == ReleaseState.PROGRESSING


def test_bad_input_and_unknown_actions(browser_for, release):
    client = browser_for("owner")
    too_long = client.post(url(release, "approve"), {"comment": "x" * 2001})
    assert too_long.status_code == 400 and not Approval.objects.exists()
    assert 'id="id_comment_error"' in too_long.content.decode()
    assert client.post(url(release, "explode"), {}).status_code == 404
    assert client.get(url(release, "approve")).status_code == 405


def test_an_outsider_cannot_act(browser_for, release):
    assert browser_for("outsider").post(url(release, "abort"), {}).status_code == 404
    assert Release.objects.get(pk=release.pk).state == ReleaseState.AWAITING_APPROVAL


def test_a_first_release_without_staging_skips_what_its_plan_lacks(browser_for, envs, team, people):
    model = RegisteredModelFactory(name="churn", team=team, risk_tier="low")
    first = ModelVersionFactory(model=model, number=1)
    release = release_of(deployment_of(model, envs[0]), first, people["maintainer"])
    html = html_of(browser_for("viewer"), url(release))
    keys = re.findall(r'<li id="stage-([\w-]+)" class="stage stage-(\w+)"', html)
    assert [k for k, _ in keys] == [
        "registry",
        "approval",
        "staging",
        "rehearsal",
        "deploy",
        "traffic-3",
        "promote-4",
    ]
    assert dict(keys)["staging"] == "skipped" and "Not in this release&#x27;s plan" in html
    assert "No approval required for this risk tier" in stage(html, "approval")
    assert "All traffic to v1" in html
    assert "Your decision" not in html and "Nothing runs in this deployment yet" in html
