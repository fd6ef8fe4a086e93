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
        from monitoring.analysis import Thresholds, analyze_canary
        from monitoring.sources.base import VersionKey

        source = metrics_source_for(
            request.metrics_kind, request.metrics_url, request.query_overrides
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
        outcome = analyze_canary(
            source,
            VersionKey(request.model, request.stable_version),
            VersionKey(request.model, request.canary_version),
            thresholds,
            request.window_seconds,
            request.min_requests,
        )
        return AnalysisResult(
            Verdict(str(outcome.verdict)), list(outcome.reasons), outcome.evidence
        )


def metrics_source_for(kind: str, url: str, overrides: dict[str, str] | None = None) -> Any:
    if kind == "prometheus" and url:
        from monitoring.sources.prometheus import PrometheusSource

        return PrometheusSource(url, query_templates=overrides or None)
    if kind == "local":
        from monitoring.sources.local import LocalScrapeSource

        return LocalScrapeSource()
    return None


def analyzer() -> Analyzer:
    """The configured analyzer (settings.MODELPLANE_ANALYZER, a dotted path) or monitoring's."""
    path = getattr(settings, "MODELPLANE_ANALYZER", "")
    return import_string(path)() if path else MonitoringAnalyzer()
