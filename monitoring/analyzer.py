"""Monitoring's side of the engine's analysis port (deployments.analysis): canary against stable
from the environment's metrics source, with the cost check priced from the release's config.
Wired by settings.MODELPLANE_ANALYZER; a missing source or failed query is inconclusive, never a
pass."""

from __future__ import annotations

from typing import Any

from deployments import kpi
from deployments.analysis import SAMPLE_SCRAPES, AnalysisRequest, AnalysisResult, Verdict

from .analysis import CostCheck, DriftThresholds, ReplicaResources, Thresholds, analyze_canary
from .cost import CostRates
from .sources.base import VersionKey
from .sources.local import LocalScrapeSource
from .sources.prometheus import PrometheusSource


class MonitoringAnalyzer:
    """Canary vs stable from the environment's metrics source (monitoring.analysis)."""

    def analyze(self, request: AnalysisRequest) -> AnalysisResult:
        source = metrics_source_for(
            request.metrics_kind,
            request.metrics_url,
            kpi.query_templates(request.metrics_queries),
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
        return AnalysisResult(outcome.verdict, list(outcome.reasons), outcome.evidence)


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
        return PrometheusSource(
            url, query_templates=overrides or None, scrape_interval_seconds=scrape_interval_seconds
        )
    if kind == "local":
        # Samples of SAMPLE_SCRAPES scrapes, as for Prometheus: a late scrape never empties one.
        return LocalScrapeSource(min_step_seconds=SAMPLE_SCRAPES * scrape_interval_seconds)
    return None
