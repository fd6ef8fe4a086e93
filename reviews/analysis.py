"""The canary analysis with the human-review gate: the engine's analysis port
(deployments.analysis) implemented by delegating the metrics to monitoring's analyzer and adding
one gate when the release's config has an enabled review policy: the canary's override rate
against stable's. Wired by settings.MODELPLANE_ANALYZER.

Which items count: level-1 decisions of items created since the canary's first reviewed item of
this release, for both versions (stable's from that same moment, so both rates cover the same
period, the same inputs and the same reviewers). Not the analysis window: people decide hours
after the prediction, so a few minutes' window would hold almost no decision. Too few decisions
on either side is inconclusive, never a pass; the gate never fails on a missing number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Min

from core.jsonsafe import json_safe
from deployments.analysis import AnalysisRequest, AnalysisResult, Analyzer, Verdict
from deployments.review_policy import ReviewPolicy, policy_of
from monitoring.analyzer import MonitoringAnalyzer
from monitoring.wording import percent

from .models import ReviewItem
from .outcomes import VersionOutcomes, rates

EVIDENCE_KEY = "human_review"
# Rates are fractions of whole counts: a difference this small is rounding, not an increase.
_EPSILON = 1e-9


@dataclass(frozen=True)
class GateResult:
    """The override-rate gate's verdict, its one reason, and its numbers for the evidence."""

    verdict: Verdict
    reason: str
    evidence: dict[str, Any]


class OverrideRateAnalyzer:
    """Monitoring's analysis (error rate, latency, drift, cost) plus the override-rate gate.
    `delegate` is the analyzer of the metrics (a class taking no arguments), so a test can put a
    scripted one under the real gate."""

    delegate: type[Analyzer] = MonitoringAnalyzer

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        metrics = self.delegate().analyze(request)
        policy = policy_of(request.review_policy)
        if not policy.enabled:
            return metrics  # nothing is reviewed: no gate, the metrics decide alone
        gate = override_rate_gate(request, policy)
        return combine(metrics, gate)


def combine(metrics: AnalysisResult, gate: GateResult) -> AnalysisResult:
    """One verdict as analyze_canary combines its checks: any fail fails, else any inconclusive
    is inconclusive, else pass. The reasons are those of the parts that decided the verdict (a
    failed release says why it failed, not that its latency was fine)."""
    parts = [(metrics.verdict, list(metrics.reasons)), (gate.verdict, [gate.reason])]
    verdicts = {verdict for verdict, _ in parts}
    if Verdict.FAIL in verdicts:
        verdict = Verdict.FAIL
    elif Verdict.INCONCLUSIVE in verdicts:
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    reasons = [reason for decided, found in parts if decided is verdict for reason in found]
    evidence = dict(metrics.evidence)
    # The engine stores the evidence under the combined verdict; the metrics' own is kept.
    evidence["metrics_verdict"] = str(metrics.verdict)
    evidence["verdict"] = str(verdict)
    evidence[EVIDENCE_KEY] = gate.evidence
    return AnalysisResult(verdict, reasons, evidence)


def override_rate_gate(request: AnalysisRequest, policy: ReviewPolicy) -> GateResult:
    """Judge the canary's level-1 override rate against stable's (two queries)."""
    if _is_shadow(request):
        reason = (
            "human review not checked: a shadow answers no caller, so its predictions are "
            "not reviewed"
        )
        return GateResult(Verdict.PASS, reason, {"status": "not_checked", "reason": reason})
    since = _canary_first_item(request)
    found = rates(
        request.deployment_id,
        [request.stable_version, request.canary_version],
        since or request.release_created_at,
    )
    return judge(
        found[request.stable_version],
        found[request.canary_version],
        policy,
        since=since or request.release_created_at,
    )


def judge(
    stable: VersionOutcomes,
    canary: VersionOutcomes,
    policy: ReviewPolicy,
    *,
    since: datetime | None = None,
) -> GateResult:
    """Fail when the canary's override rate exceeds stable's by more than
    `policy.max_override_rate_increase` (absolute: stable is often 0%, where a relative limit
    means nothing); inconclusive when either side has fewer than `policy.min_decided_for_gate`
    level-1 decisions; pass otherwise."""
    needed = policy.min_decided_for_gate
    limit = policy.max_override_rate_increase
    evidence: dict[str, Any] = {
        "since": since.isoformat() if since else None,
        "stable": stable.as_dict(),
        "canary": canary.as_dict(),
        "min_decided": needed,
        "max_override_rate_increase": limit,
        "increase": None,
    }
    short = [
        f"{role} {side.decided}"
        for role, side in (("canary", canary), ("stable", stable))
        if side.decided < needed
    ]
    if short:
        reason = (
            f"human review: too few decided items to compare override rates ({', '.join(short)} "
            f"decided, {needed} needed on each side)"
        )
        return _result(Verdict.INCONCLUSIVE, reason, evidence)
    # Both sides decided at least `needed` (>= 1) items here, so both rates exist.
    canary_rate = canary.overridden / canary.decided
    stable_rate = stable.overridden / stable.decided
    increase = canary_rate - stable_rate
    evidence["increase"] = increase
    numbers = (
        f"canary v{canary.version} override rate {percent(canary_rate)} "
        f"({canary.overridden} of {canary.decided} decided) against stable v{stable.version}'s "
        f"{percent(stable_rate)} ({stable.overridden} of {stable.decided})"
    )
    if increase > limit + _EPSILON:
        reason = f"{numbers}: {increase * 100:+.1f} points, over the +{limit * 100:.1f}-point limit"
        return _result(Verdict.FAIL, reason, evidence)
    reason = f"{numbers}: {increase * 100:+.1f} points, within the +{limit * 100:.1f}-point limit"
    return _result(Verdict.PASS, reason, evidence)


def _result(verdict: Verdict, reason: str, evidence: dict[str, Any]) -> GateResult:
    evidence.update(status=str(verdict), reason=reason)
    return GateResult(verdict, reason, json_safe(evidence))


def _canary_first_item(request: AnalysisRequest) -> datetime | None:
    """When the canary's first item of this release was created: the start of the period both
    rates are counted over (None when the canary has none yet)."""
    items = ReviewItem.objects.filter(
        deployment_id=request.deployment_id, model_version__number=request.canary_version
    )
    if request.release_created_at is not None:
        items = items.filter(created_at__gte=request.release_created_at)
    return items.order_by().aggregate(first=Min("created_at"))["first"]


def _is_shadow(request: AnalysisRequest) -> bool:
    """The canary only sees mirrored copies of stable's traffic (no weight of its own)."""
    weights = {str(k): float(v or 0) for k, v in (request.traffic.get("weights") or {}).items()}
    mirror = request.traffic.get("mirror") or {}
    canary = str(request.canary_version)
    return weights.get(canary, 0.0) <= 0 and str(mirror.get("version")) == canary
