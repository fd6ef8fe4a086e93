"""Canary analysis: one judgement of a canary version against the stable version over a window,
from a `MetricsSource`, against the deployment's SLO thresholds and with rank statistics.

It must never pass on missing evidence: too little traffic, too few intervals or a failed query
is `inconclusive` (which pauses the release and asks a human), never `pass` and never `fail`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from monitoring.sources.base import MetricsSource, MetricsUnavailable, VersionKey, WindowStats
from monitoring.statistics import (
    DEFAULT_MIN_SAMPLES,
    Comparison,
    Direction,
    Verdict,
    mann_whitney_compare,
    spread_compare,
    threshold_check,
)

__all__ = ["AnalysisVerdict", "Thresholds", "Verdict", "analyze_canary"]


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
    # Fewer per-interval samples than this per side makes the comparison inconclusive.
    min_intervals: int = DEFAULT_MIN_SAMPLES
    # Length of each per-interval sample; None lets the source choose (about 20 per window).
    step_seconds: float | None = None

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


def analyze_canary(
    source: MetricsSource,
    stable: VersionKey,
    canary: VersionKey,
    thresholds: Thresholds,
    window_seconds: float,
    min_requests: int,
    end: float | None = None,
) -> AnalysisVerdict:
    """Judge the canary: inconclusive without enough data on both sides, fail on an SLO breach,
    then fail when it is significantly and materially worse than stable, pass otherwise."""
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
    return AnalysisVerdict(verdict=verdict, reasons=reasons, evidence=_json_safe(evidence))


def _json_safe(value: Any) -> Any:
    """Evidence is stored as JSON on the release step: no NaN or infinity (not valid JSON),
    tuples as lists, enums as their values."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return str(value) if isinstance(value, Verdict | Direction) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
