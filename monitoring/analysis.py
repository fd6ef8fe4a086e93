"""Canary analysis: one judgement of a canary version against the stable version over a window,
from a `MetricsSource`: the deployment's SLO thresholds, rank statistics against stable, then the
canary's input and prediction drift against its baseline profile and its cost per prediction.

It must never pass on missing evidence: too little traffic, too few intervals or a failed query
is `inconclusive` (which pauses the release and asks a human), never `pass` and never `fail`.
The one documented exception is drift with too few live observations per feature: it is noted
in the evidence and does not hold back a verdict that error rate and latency already decide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from core.jsonsafe import json_safe
from deployments.analysis import Verdict
from monitoring.cost import CostRates, Quantity, cost_per_1000, hourly_cost
from monitoring.drift import (
    DriftReport,
    DriftStatus,
    DriftThresholds,
    drift_report,
    live_counts_of,
)
from monitoring.sources.base import (
    MetricsSource,
    MetricsUnavailable,
    NoData,
    VersionKey,
    WindowStats,
)
from monitoring.statistics import (
    DEFAULT_MIN_SAMPLES,
    Comparison,
    Direction,
    mann_whitney_compare,
    spread_compare,
    threshold_check,
)

__all__ = [
    "AnalysisVerdict",
    "CostCheck",
    "DriftThresholds",
    "ReplicaResources",
    "Thresholds",
    "analyze_canary",
]


@dataclass(frozen=True)
class Thresholds:
    """The SLO limits a canary must stay within, and how much worse than stable it may be."""

    max_error_rate: float = 0.01
    max_latency_p95_seconds: float = 0.5
    max_latency_p99_seconds: float | None = None
    # Significance of the canary-vs-stable tests (one-sided: only "worse" fails).
    alpha: float = 0.05
    # A significant latency shift fails only when at least this relative to stable's median.
    latency_shift_tolerance: float = 0.10
    # A significant growth in latency spread fails only when at least this relative.
    latency_spread_tolerance: float = 0.50
    # A significant error-rate shift fails only when the canary's window error rate exceeds
    # stable's by more than this (absolute): stable often has no errors at all, so a relative
    # tolerance would be undefined there.
    error_rate_tolerance: float = 0.005
    # A latency shift (or a growth of its spread) fails only when it is also this large in
    # seconds; None means 5% of the p95 SLO target. A 0.5 ms slower model is "20% worse" on a
    # 2.5 ms baseline and significant at 20 samples, yet no user can tell: not a rollback.
    latency_min_shift_seconds: float | None = None
    # Fewer per-interval samples than this per side makes the comparison inconclusive.
    min_intervals: int = DEFAULT_MIN_SAMPLES
    # Length of each per-interval sample; None lets the source choose (about 20 per window).
    step_seconds: float | None = None

    @property
    def latency_floor_seconds(self) -> float:
        if self.latency_min_shift_seconds is not None:
            return self.latency_min_shift_seconds
        return 0.05 * self.max_latency_p95_seconds

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate <= 1:
            raise ValueError("max_error_rate must be within [0, 1]")
        if self.max_latency_p95_seconds <= 0:
            raise ValueError("max_latency_p95_seconds must be positive")
        if self.max_latency_p99_seconds is not None and self.max_latency_p99_seconds <= 0:
            raise ValueError("max_latency_p99_seconds must be positive")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be within (0, 1)")
        if self.min_intervals < 2:
            raise ValueError("min_intervals must be at least 2")


@dataclass(frozen=True)
class AnalysisVerdict:
    verdict: Verdict
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": str(self.verdict), "reasons": self.reasons, "evidence": self.evidence}


@dataclass(frozen=True)
class ReplicaResources:
    """What one version runs on: per-replica requests (cores or a quantity such as "250m", GiB or
    "512Mi"), GPUs per replica, and the number of replicas."""

    cpu: Quantity
    memory: Quantity
    gpus: float = 0.0
    replicas: float = 1.0

    def hourly_cost(self, rates: CostRates) -> float:
        # Requests only: the metrics source does not measure container usage, so this is the
        # allocation a scheduler reserves (OpenCost's max(request, usage) with usage unknown).
        return hourly_cost(self.cpu, 0.0, self.memory, 0.0, self.gpus, self.replicas, rates)


@dataclass(frozen=True)
class CostCheck:
    """Canary vs stable cost per 1,000 predictions.

    `*_share` is the fraction of live traffic each version was meant to receive (canary weight,
    or the mirror percentage for a shadow). With it, each side's predictions per replica are
    scaled to what that side would serve at the whole traffic, so a canary on 5% of the traffic
    with as many replicas as stable is not billed for the 95% it never saw. Without it the raw
    window figures are compared (right when replicas follow load, e.g. with an autoscaler).
    `max_relative_increase` (e.g. 0.2 = 20% dearer) fails the analysis above it; None only
    reports the numbers.
    """

    rates: CostRates
    stable: ReplicaResources
    canary: ReplicaResources
    stable_share: float | None = None
    canary_share: float | None = None
    max_relative_increase: float | None = None

    def __post_init__(self) -> None:
        for name in ("stable_share", "canary_share"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"{name} must be within (0, 1]")
        limit = self.max_relative_increase
        if limit is not None and not (math.isfinite(limit) and limit >= 0):
            raise ValueError("max_relative_increase must be a finite, non-negative number")
        for side in (self.stable, self.canary):
            if not side.replicas > 0:
                raise ValueError("replicas must be positive")


def analyze_canary(
    source: MetricsSource,
    stable: VersionKey,
    canary: VersionKey,
    thresholds: Thresholds,
    window_seconds: float,
    min_requests: int,
    end: float | None = None,
    *,
    baseline_profile: Mapping[str, Any] | None = None,
    drift_thresholds: DriftThresholds | None = None,
    cost: CostCheck | None = None,
) -> AnalysisVerdict:
    """Judge the canary: inconclusive without enough data on both sides, fail on an SLO breach,
    fail when it is significantly and materially worse than stable; then fail on drift at or
    over the alert threshold (against `baseline_profile`) and on a cost increase over
    `cost.max_relative_increase`; inconclusive when a test could not decide; pass otherwise.

    Without a baseline profile drift is not checked, without `cost` cost is not computed: both
    are said so in the evidence."""
    evidence: dict[str, Any] = {
        "source": type(source).__name__,
        "stable": {"model": stable.model, "version": stable.version},
        "canary": {"model": canary.model, "version": canary.version},
        "window_seconds": window_seconds,
        "min_requests": min_requests,
        "thresholds": asdict(thresholds),
    }
    try:
        found = source.batch_window_stats(
            [stable, canary], window_seconds, end=end, step_seconds=thresholds.step_seconds
        )
    except MetricsUnavailable as exc:
        evidence["unavailable"] = [exc.to_dict()]
        return _verdict(Verdict.INCONCLUSIVE, [f"metrics unavailable: {exc.reason}"], evidence)

    unavailable = [
        (role, value)
        for role, value in (("stable", found[stable]), ("canary", found[canary]))
        if isinstance(value, MetricsUnavailable)
    ]
    if unavailable:
        evidence["unavailable"] = [value.to_dict() for _, value in unavailable]
        reasons = [f"{role} metrics unavailable: {value.reason}" for role, value in unavailable]
        return _verdict(Verdict.INCONCLUSIVE, reasons, evidence)

    stable_stats: WindowStats = found[stable]
    canary_stats: WindowStats = found[canary]
    evidence["stable_stats"] = stable_stats.to_dict()
    evidence["canary_stats"] = canary_stats.to_dict()
    evidence["end"] = canary_stats.end

    too_little = [
        f"{role} served {stats.requests:.0f} requests in {window_seconds:g}s, "
        f"fewer than the {min_requests} needed"
        for role, stats in (("stable", stable_stats), ("canary", canary_stats))
        if stats.requests < min_requests
    ]
    if too_little:
        return _verdict(Verdict.INCONCLUSIVE, too_little, evidence)

    checks = {
        "error_rate": threshold_check(canary_stats.error_rate, thresholds.max_error_rate),
        "latency_p95": threshold_check(
            canary_stats.latency_p95, thresholds.max_latency_p95_seconds
        ),
    }
    if thresholds.max_latency_p99_seconds is not None:
        checks["latency_p99"] = threshold_check(
            canary_stats.latency_p99, thresholds.max_latency_p99_seconds
        )
    evidence["slo_checks"] = {name: check.as_dict() for name, check in checks.items()}
    breaches = [
        f"canary {name} {check.reason} (SLO)"
        for name, check in checks.items()
        if check.verdict is Verdict.FAIL
    ]
    if breaches:
        return _verdict(Verdict.FAIL, breaches, evidence)
    missing = [
        f"canary {name}: no data"
        for name, check in checks.items()
        if check.verdict is not Verdict.PASS
    ]
    if missing:
        return _verdict(Verdict.INCONCLUSIVE, missing, evidence)

    comparisons = _compare(stable_stats, canary_stats, thresholds)
    evidence["comparisons"] = {
        name: comparison.as_dict() for name, comparison in comparisons.items()
    }
    failed = {
        name for name, comparison in comparisons.items() if comparison.verdict is Verdict.FAIL
    }
    if "error_rate_shift" in failed:
        excess = (canary_stats.error_rate or 0.0) - (stable_stats.error_rate or 0.0)
        evidence["error_rate_excess"] = excess
        if excess <= thresholds.error_rate_tolerance:
            failed.discard("error_rate_shift")
    floor = thresholds.latency_floor_seconds
    evidence["latency_min_shift_seconds"] = floor
    for name in ("latency_p95_shift", "latency_p95_spread"):
        estimate = comparisons[name].estimate
        if name in failed and estimate is not None and estimate < floor:
            failed.discard(name)
            evidence.setdefault("immaterial", []).append(
                f"{name}: +{estimate * 1000:.2f} ms is below the {floor * 1000:.1f} ms that "
                "matters (significant, but no user can tell)"
            )
    worse = [
        f"canary {name} worse than stable: {comparison.reason}"
        for name, comparison in comparisons.items()
        if name in failed
    ]
    if worse:
        return _verdict(Verdict.FAIL, worse, evidence)
    undecided = [
        f"{name}: {comparison.reason}"
        for name, comparison in comparisons.items()
        if comparison.verdict is Verdict.INCONCLUSIVE
    ]
    # Drift and cost run even when a rank test was undecided: a drift alert or a cost breach is
    # conclusive on its own and must roll back rather than pause.
    warnings: list[str] = []
    drift = _drift_check(
        source, canary, window_seconds, canary_stats.end, baseline_profile, drift_thresholds
    )
    evidence["drift"] = drift.evidence
    warnings += drift.warnings
    costs = _cost_check(cost, stable_stats, canary_stats, window_seconds)
    evidence["cost"] = costs.evidence
    warnings += costs.warnings
    evidence["warnings"] = warnings
    failures = drift.failures + costs.failures
    if failures:
        return _verdict(Verdict.FAIL, failures, evidence)
    undecided += drift.undecided + costs.undecided
    if undecided:
        return _verdict(Verdict.INCONCLUSIVE, undecided, evidence)
    return _verdict(
        Verdict.PASS,
        [
            f"canary within SLO (error rate {canary_stats.error_rate:.4f}, "
            f"p95 {canary_stats.latency_p95:.4f}s) and not worse than stable"
        ],
        evidence,
    )


@dataclass
class _Check:
    """The outcome of one post-statistics check: what goes in the evidence, and which reasons
    fail the canary, leave it undecided, or are only warnings."""

    evidence: dict[str, Any]
    failures: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _drift_check(
    source: MetricsSource,
    canary: VersionKey,
    window_seconds: float,
    end: float,
    baseline_profile: Mapping[str, Any] | None,
    thresholds: DriftThresholds | None,
) -> _Check:
    thresholds = thresholds or DriftThresholds()
    if not baseline_profile or not (
        baseline_profile.get("features") or baseline_profile.get("prediction")
    ):
        reason = "drift not checked: the canary version has no baseline profile"
        return _Check({"status": "not_checked", "reason": reason}, warnings=[reason])
    try:
        found = source.batch_feature_counts([canary], window_seconds, end=end)[canary]
    except MetricsUnavailable as exc:
        found = exc
    if isinstance(found, NoData):
        # The runtime exports no feature histograms (e.g. Triton): nothing to judge, like too few
        # observations. Error rate and latency decide.
        reason = f"drift not checked: no live feature counts ({found.reason})"
        return _Check(
            {"status": "no_data", "reason": reason, "unavailable": found.to_dict()},
            warnings=[reason],
        )
    if isinstance(found, MetricsUnavailable):
        # A failed query is not "little data": we do not know, so we do not pass.
        reason = f"drift query failed: {found.reason}"
        return _Check(
            {"status": "unavailable", "reason": reason, "unavailable": found.to_dict()},
            undecided=[reason],
        )
    try:
        report = drift_report(baseline_profile, live_counts_of(found), thresholds)
    except ValueError as exc:
        # The live buckets do not line up with the profile: the drift cannot be measured, and
        # the version's metrics contract is broken, which a human has to look at.
        reason = f"drift cannot be computed: {exc}"
        return _Check({"status": "invalid", "reason": reason}, undecided=[reason])
    return _judge_drift(report)


def _judge_drift(report: DriftReport) -> _Check:
    judged = [*report.features.values(), *([report.prediction] if report.prediction else [])]
    summary = {
        "status": str(report.status),
        "psi_max": _max_value(f.value for f in judged if f.metric == "psi"),
        "js_max": _max_value(f.value for f in judged if f.metric == "js_distance"),
        **report.as_dict(),
    }
    check = _Check(summary)

    def describe(f: Any, limit: float) -> str:
        metric = "PSI" if f.metric == "psi" else "JS distance"
        return f"{f.name} {metric} {f.value:.3f} (limit {limit:g})"

    t = report.thresholds
    by_status: dict[DriftStatus, list[str]] = {status: [] for status in DriftStatus}
    for f in judged:
        alert, warn = (t.alert, t.warn) if f.metric == "psi" else (t.js_alert, t.js_warn)
        if f.status is DriftStatus.ALERT:
            by_status[f.status].append(describe(f, alert))
        elif f.status is DriftStatus.WARN:
            by_status[f.status].append(describe(f, warn))
        elif f.status is DriftStatus.INSUFFICIENT_DATA:
            by_status[f.status].append(f"{f.name} ({f.reason})")
    if by_status[DriftStatus.ALERT]:
        check.failures.append(
            "canary drift at or over the alert threshold: "
            + ", ".join(by_status[DriftStatus.ALERT])
        )
    if by_status[DriftStatus.WARN]:
        check.warnings.append(
            "canary drift over the warning threshold: " + ", ".join(by_status[DriftStatus.WARN])
        )
    if by_status[DriftStatus.INSUFFICIENT_DATA]:
        # Decision (docs/analysis.md): too few live observations leaves drift unjudged for those
        # features but does not hold back a verdict that error rate and latency decide.
        check.warnings.append(
            "drift not judged (too little data, not blocking): "
            + ", ".join(by_status[DriftStatus.INSUFFICIENT_DATA])
        )
    return check


def _max_value(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _cost_check(
    cost: CostCheck | None, stable: WindowStats, canary: WindowStats, window_seconds: float
) -> _Check:
    if cost is None:
        reason = "cost not checked: no prices or resources were given"
        return _Check({"status": "not_checked", "reason": reason})
    hours = window_seconds / 3600.0
    # Normalising one side only would compare two different things: both shares or neither.
    by_share = cost.stable_share is not None and cost.canary_share is not None
    sides: dict[str, dict[str, Any]] = {}
    normalised: dict[str, float | None] = {}
    for role, stats, resources, share in (
        ("stable", stable, cost.stable, cost.stable_share if by_share else None),
        ("canary", canary, cost.canary, cost.canary_share if by_share else None),
    ):
        per_replica_hour = resources.hourly_cost(cost.rates) / resources.replicas
        throughput = stats.predictions / resources.replicas / hours  # per replica-hour
        at_full = throughput / share if share else throughput
        normalised[role] = (
            per_replica_hour / at_full * 1000.0 if at_full > 0 and per_replica_hour > 0 else None
        )
        sides[role] = {
            "replicas": resources.replicas,
            "hourly_cost": per_replica_hour * resources.replicas,
            "window_cost": per_replica_hour * resources.replicas * hours,
            "predictions": stats.predictions,
            "predictions_per_replica_hour": throughput,
            "traffic_share": share,
            "cost_per_1000": cost_per_1000(
                per_replica_hour * resources.replicas * hours, stats.predictions
            ),
            "cost_per_1000_at_full_traffic": normalised[role],
        }
    evidence: dict[str, Any] = {
        "rates": asdict(cost.rates),
        "stable": sides["stable"],
        "canary": sides["canary"],
        "max_relative_increase": cost.max_relative_increase,
        "normalised_by_traffic_share": by_share,
    }
    stable_cost, canary_cost = normalised["stable"], normalised["canary"]
    if stable_cost is None or canary_cost is None:
        reason = "cost per prediction unknown (no predictions, or zero prices)"
        evidence.update(status="unknown", relative_increase=None, reason=reason)
        if cost.max_relative_increase is None:
            return _Check(evidence, warnings=[reason])
        return _Check(evidence, undecided=[f"cost limit set but {reason}"])
    increase = canary_cost / stable_cost - 1.0
    evidence["relative_increase"] = increase
    limit = cost.max_relative_increase
    if limit is not None and increase > limit:
        evidence["status"] = "exceeded"
        return _Check(
            evidence,
            failures=[
                f"canary costs {canary_cost:.4g} per 1,000 predictions against stable's "
                f"{stable_cost:.4g} (+{increase:.0%}, limit +{limit:.0%})"
            ],
        )
    evidence["status"] = "ok" if limit is not None else "reported"
    return _Check(evidence)


def _compare(
    stable: WindowStats, canary: WindowStats, thresholds: Thresholds
) -> dict[str, Comparison]:
    """Canary vs stable on the per-interval samples; an interval with no traffic has no rate or
    quantile and is left out rather than counted as zero."""

    def values(stats: WindowStats, attribute: str) -> list[float]:
        return [
            value
            for sample in stats.samples
            if (value := getattr(sample, attribute)) is not None and math.isfinite(value)
        ]

    common = {"alpha": thresholds.alpha, "min_samples": thresholds.min_intervals}
    return {
        "error_rate_shift": mann_whitney_compare(
            values(stable, "error_rate"),
            values(canary, "error_rate"),
            Direction.INCREASE_IS_BAD,
            effect_threshold=0.0,
            **common,
        ),
        "latency_p95_shift": mann_whitney_compare(
            values(stable, "p95"),
            values(canary, "p95"),
            Direction.INCREASE_IS_BAD,
            effect_threshold=thresholds.latency_shift_tolerance,
            **common,
        ),
        "latency_p95_spread": spread_compare(
            values(stable, "p95"),
            values(canary, "p95"),
            Direction.INCREASE_IS_BAD,
            effect_threshold=thresholds.latency_spread_tolerance,
            **common,
        ),
    }


def _verdict(verdict: Verdict, reasons: list[str], evidence: dict[str, Any]) -> AnalysisVerdict:
    evidence["verdict"] = str(verdict)
    return AnalysisVerdict(verdict=verdict, reasons=reasons, evidence=json_safe(evidence))
