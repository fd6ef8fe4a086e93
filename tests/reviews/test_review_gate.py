"""The human-review gate of the canary analysis (reviews.analysis): a canary overridden more often
than stable by more than the policy allows fails with both rates and counts in its reason and
evidence; equal rates pass; too few decisions is inconclusive; no policy, no gate; the verdicts
combine with the metrics' as analyze_canary's checks do. End to end on the engine (fake
Kubernetes API, scripted metrics under the real gate): the canary is rolled back on that gate
and the release page shows the numbers to an approver."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.utils.html import escape

from core import clock
from deployments import services
from deployments.analysis import AnalysisRequest, AnalysisResult, Verdict
from deployments.models import Deployment, ReleaseStep
from deployments.review_policy import policy_of
from reviews.analysis import GateResult, OverrideRateAnalyzer, combine, override_rate_gate
from reviews.models import Decision
from tests.deployments.conftest import (  # noqa: F401 (fixtures)
    drive,
    fake_k8s,
    promoted_v1,
    world,
)
from tests.reviews.test_outcomes import POLICY, items, review_item, reviewed_deployment
from tests.support.analyzers import ScriptedAnalyzer
from tests.support.pages import html_of

pytestmark = pytest.mark.django_db


class PassingMetrics:
    """The metrics' analyzer, stubbed: the canary is fine on error rate and latency."""

    result: ClassVar[AnalysisResult] = AnalysisResult(
        Verdict.PASS,
        ["canary within SLO (error rate 0.0000, p95 0.0100s) and not worse than stable"],
        {"verdict": "pass", "canary_stats": {"error_rate": 0.0}},
    )

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        return self.result


class GateOverPassingMetrics(OverrideRateAnalyzer):
    delegate = PassingMetrics


class GateOverScriptedMetrics(OverrideRateAnalyzer):
    """The real gate over the engine tests' scripted metrics (no Prometheus there)."""

    delegate = ScriptedAnalyzer


def request_for(
    deployment: Deployment, policy: dict[str, Any] | None = None, **overrides: Any
) -> AnalysisRequest:
    fields: dict[str, Any] = {
        "deployment_id": deployment.pk,
        "environment": "production",
        "model": deployment.model.name,
        "stable_version": 1,
        "canary_version": 2,
        "window_seconds": 300,
        "min_requests": 10,
        "max_error_rate": 0.01,
        "max_latency_p95_seconds": 0.5,
        "metrics_kind": "prometheus",
        "metrics_url": "http://127.0.0.1:9",
        "traffic": {"weights": {"1": 95, "2": 5}, "mirror": None},
        "review_policy": POLICY if policy is None else policy,
        "release_created_at": clock.now() - timedelta(hours=1),
    }
    return AnalysisRequest(**{**fields, **overrides})


def decided(deployment: Deployment, version: int, *, overridden: int, confirmed: int) -> None:
    """Canary first, as in a release: the gate counts from the canary's first item."""
    items(deployment, version, overridden, decision=Decision.OVERRIDE)
    items(deployment, version, confirmed, decision=Decision.CONFIRM)


def test_a_canary_overridden_more_than_stable_fails_with_the_numbers(team):
    deployment = reviewed_deployment(team)  # 5 decisions needed, +5 points allowed
    decided(deployment, 2, overridden=4, confirmed=6)
    decided(deployment, 1, overridden=1, confirmed=9)

    result = GateOverPassingMetrics().analyze(request_for(deployment))

    assert result.verdict is Verdict.FAIL
    assert result.reasons == [
        "canary v2 override rate 40.0% (4 of 10 decided) against stable v1's 10.0% (1 of 10): "
        "+30.0 points, over the +5.0-point limit"
    ]
    review = result.evidence["human_review"]
    assert review["status"] == "fail"
    assert review["canary"]["decided"] == 10 and review["canary"]["overridden"] == 4
    assert review["stable"]["decided"] == 10 and review["stable"]["overridden"] == 1
    assert review["canary"]["override_rate"] == pytest.approx(0.4)
    assert review["stable"]["override_rate"] == pytest.approx(0.1)
    assert review["increase"] == pytest.approx(0.3)
    assert review["max_override_rate_increase"] == 0.05 and review["min_decided"] == 5
    # The stored verdict is the combined one; the metrics' own is kept beside it.
    assert result.evidence["verdict"] == "fail"
    assert result.evidence["metrics_verdict"] == "pass"
    assert result.evidence["canary_stats"] == {"error_rate": 0.0}


def test_equal_override_rates_pass(team):
    deployment = reviewed_deployment(team)
    decided(deployment, 2, overridden=2, confirmed=8)
    decided(deployment, 1, overridden=2, confirmed=8)

    result = GateOverPassingMetrics().analyze(request_for(deployment))

    assert result.verdict is Verdict.PASS
    assert result.reasons[0].startswith("canary within SLO")
    assert result.reasons[1] == (
        "canary v2 override rate 20.0% (2 of 10 decided) against stable v1's 20.0% (2 of 10): "
        "+0.0 points, within the +5.0-point limit"
    )
    assert result.evidence["human_review"]["status"] == "pass"


def test_an_increase_within_the_tolerance_passes(team):
    policy = {**POLICY, "max_override_rate_increase": 0.1}
    deployment = reviewed_deployment(team, policy=policy)
    decided(deployment, 2, overridden=3, confirmed=7)  # 30%
    decided(deployment, 1, overridden=2, confirmed=8)  # 20%: +10 points, exactly the limit

    result = GateOverPassingMetrics().analyze(request_for(deployment, policy))

    assert result.verdict is Verdict.PASS, result.reasons


def test_too_few_decisions_is_inconclusive_naming_the_counts(team):
    deployment = reviewed_deployment(team)
    decided(deployment, 2, overridden=3, confirmed=0)  # 100%, but only 3 decided
    items(deployment, 2, 4)  # pending items do not count
    decided(deployment, 1, overridden=0, confirmed=10)

    result = GateOverPassingMetrics().analyze(request_for(deployment))

    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reasons == [
        "human review: too few decided items to compare override rates "
        "(canary 3 decided, 5 needed on each side)"
    ]
    assert result.evidence["human_review"]["status"] == "inconclusive"
    assert result.evidence["human_review"]["canary"]["submitted"] == 7


def test_no_decision_at_all_is_inconclusive_never_a_pass(team):
    deployment = reviewed_deployment(team)

    result = GateOverPassingMetrics().analyze(request_for(deployment))

    assert result.verdict is Verdict.INCONCLUSIVE
    assert "canary 0, stable 0 decided" in result.reasons[0]


def test_without_a_review_policy_there_is_no_gate(team):
    deployment = reviewed_deployment(team, policy={})
    decided(deployment, 2, overridden=10, confirmed=0)
    decided(deployment, 1, overridden=0, confirmed=10)

    result = GateOverPassingMetrics().analyze(request_for(deployment, policy={}))

    assert result is PassingMetrics.result
    assert "human_review" not in result.evidence


def test_the_gate_reads_the_policy_of_the_release_s_config(team):
    """The request carries the release's config: a policy added to the deployment since does
    not gate a release that started without one, and the reverse."""
    deployment = reviewed_deployment(team, policy={})
    decided(deployment, 2, overridden=10, confirmed=0)
    decided(deployment, 1, overridden=0, confirmed=10)

    assert GateOverPassingMetrics().analyze(request_for(deployment)).verdict is Verdict.FAIL


def test_it_counts_from_the_canary_s_first_item_of_the_release(team):
    deployment = reviewed_deployment(team)
    started = clock.now()
    # Before the release: a failed canary attempt of v2, and stable's older decisions.
    items(deployment, 2, 10, decision=Decision.OVERRIDE, created_at=started - timedelta(days=2))
    items(deployment, 1, 10, decision=Decision.OVERRIDE, created_at=started - timedelta(hours=2))
    # The release starts at `started`; stable is reviewed before the canary's first item.
    items(deployment, 1, 10, decision=Decision.CONFIRM, created_at=started + timedelta(minutes=1))
    canary_start = started + timedelta(minutes=10)
    items(deployment, 2, 5, decision=Decision.CONFIRM, created_at=canary_start)
    items(deployment, 1, 5, decision=Decision.CONFIRM, created_at=canary_start)

    gate = override_rate_gate(
        request_for(deployment, release_created_at=started), policy_of(POLICY)
    )

    assert gate.verdict is Verdict.PASS
    assert gate.evidence["since"] == canary_start.isoformat()
    assert gate.evidence["canary"]["decided"] == 5
    assert gate.evidence["stable"]["decided"] == 5


def test_a_shadow_is_not_gated_on_reviews(team):
    deployment = reviewed_deployment(team)
    shadow = {"weights": {"1": 100}, "mirror": {"version": 2, "percent": 50}}

    result = GateOverPassingMetrics().analyze(request_for(deployment, traffic=shadow))

    assert result.verdict is Verdict.PASS
    assert result.evidence["human_review"]["status"] == "not_checked"


@pytest.mark.parametrize(
    ("metrics", "gate", "expected", "kept"),
    [
        (Verdict.FAIL, Verdict.PASS, Verdict.FAIL, ["metrics"]),
        (Verdict.INCONCLUSIVE, Verdict.FAIL, Verdict.FAIL, ["gate"]),
        (Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, ["gate"]),
        (Verdict.FAIL, Verdict.FAIL, Verdict.FAIL, ["metrics", "gate"]),
        (Verdict.PASS, Verdict.PASS, Verdict.PASS, ["metrics", "gate"]),
    ],
)
def test_verdicts_combine_like_the_other_checks(metrics, gate, expected, kept):
    combined = combine(
        AnalysisResult(metrics, ["metrics"], {"verdict": str(metrics)}),
        GateResult(gate, "gate", {"status": str(gate)}),
    )

    assert combined.verdict is expected
    assert combined.reasons == kept
    assert combined.evidence["verdict"] == str(expected)
    assert combined.evidence["human_review"] == {"status": str(gate)}


def test_the_default_analyzer_is_the_gate_over_monitoring(settings):
    from deployments.analysis import analyzer
    from monitoring.analyzer import MonitoringAnalyzer

    settings.MODELPLANE_ANALYZER = "reviews.analysis.OverrideRateAnalyzer"
    configured = analyzer()
    assert isinstance(configured, OverrideRateAnalyzer)
    assert configured.delegate is MonitoringAnalyzer


def test_no_metrics_source_and_no_policy_is_monitoring_s_answer_unchanged(team):
    deployment = reviewed_deployment(team, policy={})
    request = replace(request_for(deployment, policy={}), metrics_kind="none", metrics_url="")

    result = OverrideRateAnalyzer().analyze(request)

    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reasons == ["no metrics source is configured for this environment"]


# End to end on the engine -------------------------------------------------------------------


def test_a_canary_overridden_more_than_stable_is_rolled_back_with_the_numbers_on_its_page(
    promoted_v1,  # noqa: F811 (fixture)
    settings,
    browser_for,
):
    promoted = promoted_v1
    settings.MODELPLANE_ANALYZER = "tests.reviews.test_review_gate.GateOverScriptedMetrics"
    services.deployment_configure(
        actor=promoted.owner,
        deployment=promoted.deployment,
        review_policy={
            "mode": "audited",
            "sample_percent": 10,
            "min_decided_for_gate": 10,
            "max_override_rate_increase": 0.05,
        },
    )
    promoted.deployment.refresh_from_db()
    release = promoted.release(2)
    assert release.config.review_policy["min_decided_for_gate"] == 10
    # Reviewers decided what each version answered while the canary ran.
    for _ in range(6):
        review_item(promoted.deployment, 2, decision=Decision.OVERRIDE, track="canary")
    for _ in range(6):
        review_item(promoted.deployment, 2, decision=Decision.CONFIRM, track="canary")
    review_item(promoted.deployment, 1, decision=Decision.OVERRIDE)
    for _ in range(11):
        review_item(promoted.deployment, 1, decision=Decision.CONFIRM)

    release = drive(release)

    assert release.state == "rolled_back", release.status_reason
    analysis = ReleaseStep.objects.filter(release=release, kind="analysis").get()
    assert analysis.outcome == "fail"
    assert analysis.evidence["human_review"]["canary"]["override_rate"] == pytest.approx(0.5)
    assert analysis.evidence["metrics_verdict"] == "pass"  # the scripted metrics passed
    reason = (
        "canary v2 override rate 50.0% (6 of 12 decided) against stable v1's 8.33% (1 of 12): "
        "+41.7 points, over the +5.0-point limit"
    )
    assert analysis.reason == reason
    assert promoted.weights() == {1: 100}

    html = html_of(browser_for("owner"), f"/releases/{release.pk}/")
    assert escape(reason) in html
    assert "Human review: fail" in html
    assert "<td>0.500</td>" in html and "<td>0.083</td>" in html  # both override rates
    assert "<td>12</td><td>12</td>" in html  # decided on each side
