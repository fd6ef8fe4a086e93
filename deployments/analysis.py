"""The engine's analysis port: at each canary (or shadow) step it asks for a verdict with
evidence. Pass moves on, fail rolls back, inconclusive pauses and asks a human. The engine owns
this interface and never imports monitoring: the implementation (monitoring.analyzer, which asks
Prometheus or the local scrape source, wrapped by reviews.analysis, which adds the human-review
gate) is wired by settings.MODELPLANE_ANALYZER. No implementation may ever turn missing data into
a pass."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

# How much data a verdict needs, the one definition that the configuration check (validation.py)
# and the metrics sources (monitoring) both read. The rank tests trust 20 samples per side; the
# sources aim at 25 so that a few missed scrapes cost nothing. Each sample is the rate over one
# step of SAMPLE_SCRAPES scrape intervals, measured over a range one scrape longer (so that every
# increase between two scrapes lies in some sample: 4 scrapes, Prometheus' advice for rate());
# neighbouring samples then share one scrape in four, not half their data, and stay close to
# independent, as the rank tests assume.
ANALYSIS_SAMPLES = 25
SAMPLE_SCRAPES = 3


def minimum_analysis_window_seconds(scrape_interval_seconds: float) -> float:
    """The shortest analysis window that can hold its samples at this scrape interval."""
    return ANALYSIS_SAMPLES * SAMPLE_SCRAPES * scrape_interval_seconds


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
    # The deployment config's `metrics_queries` as stored (query templates, and the KPI entry
    # that the analyzer must leave out of the serving templates).
    metrics_queries: dict[str, Any] = field(default_factory=dict)
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
    # The release config's `review_policy` as stored (deployments/review_policy.py). An enabled
    # policy adds the human-review gate (reviews.analysis: the canary's override rate against
    # stable's); {} leaves it out.
    review_policy: dict[str, Any] = field(default_factory=dict)
    # When the release was created. Evidence that accumulates over a whole release rather than
    # one window (people decide reviews hours after the prediction) is counted from here.
    release_created_at: datetime | None = None


@dataclass(frozen=True)
class AnalysisResult:
    verdict: Verdict
    reasons: list[str]
    evidence: dict[str, Any]


class Analyzer(Protocol):
    def analyze(self, request: AnalysisRequest) -> AnalysisResult: ...


def analyzer() -> Analyzer:
    """The configured analyzer: settings.MODELPLANE_ANALYZER, a dotted path to a class with no
    arguments (reviews.analysis.OverrideRateAnalyzer, which delegates the metrics to
    monitoring.analyzer.MonitoringAnalyzer, unless a test scripts its own)."""
    return import_string(settings.MODELPLANE_ANALYZER)()
