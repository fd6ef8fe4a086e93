"""The engine's analysis interface: at each canary (or shadow) step it asks for a verdict with
evidence. Pass moves on, fail rolls back, inconclusive pauses and asks a human. The real
implementation asks monitoring (Prometheus or the local scrape source); nothing here may ever
turn missing data into a pass."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class Verdict(enum.StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class AnalysisRequest:
    deployment_id: int
    environment: str
    model: str
    stable_version: int
    canary_version: int
    window_seconds: float
    min_requests: int
    max_error_rate: float
    max_latency_p95_seconds: float
    metrics_kind: str
    metrics_url: str
    query_overrides: dict[str, str] = field(default_factory=dict)
    drift_alert: float = 0.25
    baseline_profile: dict[str, Any] = field(default_factory=dict)
    drift_warn: float = 0.1
    # Per-replica requests of the release's config (both versions run on it):
    # {"replicas", "cpu_request", "memory_request", "gpu"}; empty skips the cost check.
    resources: dict[str, Any] = field(default_factory=dict)
    # The environment's prices per hour: {"vcpu_hour", "gib_hour", "gpu_hour"}.
    prices: dict[str, float] = field(default_factory=dict)
    # The split last applied (Release.traffic): {"weights": {version: percent}, "mirror": ...}.
    traffic: dict[str, Any] = field(default_factory=dict)
    # Fail when the canary's cost per 1,000 predictions exceeds stable's by more than this
    # (0.2 = 20%); None reports the numbers only.
    max_cost_increase: float | None = None
    # How often the metrics source scrapes: the shortest interval worth comparing is two.
    metrics_scrape_interval_seconds: float = 15.0


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    reasons: list[str]
    evidence: dict[str, Any]


class Analyzer(Protocol):
    def analyze(self, request: AnalysisRequest) -> AnalysisResult: ...


class MonitoringAnalyzer:
    """Canary vs stable from the environment's metrics source (monitoring.analysis)."""

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        from monitoring.analysis import DriftThresholds, Thresholds, analyze_canary
        from monitoring.sources.base import VersionKey

        source = metrics_source_for(
            request.metrics_kind,
            request.metrics_url,
            request.query_overrides,
            request.metrics_scrape_interval_seconds,
        )
        if source is None:
            return AnalysisResult(
                Verdict.INCONCLUSIVE,
                ["no metrics source is configured for this environment"],
                {"metrics_kind": request.metrics_kind},
            )
        thresholds = Thresholds(
            max_error_rate=request.max_error_rate,
            max_latency_p95_seconds=request.max_latency_p95_seconds,
        )
        drift = DriftThresholds(
            warn=min(request.drift_warn, request.drift_alert), alert=request.drift_alert
        )
        outcome = analyze_canary(
            source,
            VersionKey(request.model, request.stable_version),
            VersionKey(request.model, request.canary_version),
            thresholds,
            request.window_seconds,
            request.min_requests,
            baseline_profile=request.baseline_profile or None,
            drift_thresholds=drift,
            cost=cost_check_for(request),
        )
        return AnalysisResult(
            Verdict(str(outcome.verdict)), list(outcome.reasons), outcome.evidence
        )


def traffic_shares(request: AnalysisRequest) -> tuple[float | None, float | None]:
    """(stable, canary) fractions of live traffic under the split last applied: the canary's
    weight, or its mirror percentage for a shadow (which sees copies of stable's traffic).
    None when the split does not name the version."""
    weights = {str(k): float(v) for k, v in (request.traffic.get("weights") or {}).items()}
    mirror = request.traffic.get("mirror") or {}

    def share(percent: float | None) -> float | None:
        return percent / 100.0 if percent and 0 < percent <= 100 else None

    stable = share(weights.get(str(request.stable_version)))
    canary = share(weights.get(str(request.canary_version)))
    if canary is None and str(mirror.get("version")) == str(request.canary_version):
        canary = share(float(mirror.get("percent") or 0))
    return stable, canary


def cost_check_for(request: AnalysisRequest) -> Any:
    """The cost check of a request, or None when it carries no resources or no price. Both
    versions are priced on the release's config: same resources, so the comparison is one of
    predictions served per replica."""
    from monitoring.analysis import CostCheck, ReplicaResources
    from monitoring.cost import CostRates

    if not request.resources or not any(float(v or 0) > 0 for v in request.prices.values()):
        return None  # no prices configured for the environment: nothing to compare
    rates = CostRates(
        vcpu_hour=float(request.prices.get("vcpu_hour", 0)),
        gib_hour=float(request.prices.get("gib_hour", 0)),
        gpu_hour=float(request.prices.get("gpu_hour", 0)),
    )
    resources = ReplicaResources(
        cpu=request.resources.get("cpu_request", "0"),
        memory=request.resources.get("memory_request", "0"),
        gpus=float(request.resources.get("gpu", 0) or 0),
        replicas=float(request.resources.get("replicas", 1) or 1),
    )
    stable_share, canary_share = traffic_shares(request)
    return CostCheck(
        rates=rates,
        stable=resources,
        canary=resources,
        stable_share=stable_share,
        canary_share=canary_share,
        max_relative_increase=request.max_cost_increase,
    )


def metrics_source_for(
    kind: str,
    url: str,
    overrides: dict[str, str] | None = None,
    scrape_interval_seconds: float = 15.0,
) -> Any:
    """The metrics source of an environment (None when it has none)."""
    if kind == "prometheus" and url:
        from monitoring.sources.prometheus import PrometheusSource

        return PrometheusSource(
            url, query_templates=overrides or None, scrape_interval_seconds=scrape_interval_seconds
        )
    if kind == "local":
        from monitoring.sources.local import LocalScrapeSource

        # Two scrapes per interval, as for Prometheus: one late scrape must not empty a step.
        return LocalScrapeSource(min_step_seconds=2 * scrape_interval_seconds)
    return None


def analyzer() -> Analyzer:
    """The configured analyzer (settings.MODELPLANE_ANALYZER, a dotted path) or monitoring's."""
    path = getattr(settings, "MODELPLANE_ANALYZER", "")
    return import_string(path)() if path else MonitoringAnalyzer()
