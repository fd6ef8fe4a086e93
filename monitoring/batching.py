"""One batched round trip per metrics source for many deployments: everything the tiles need from
one environment's source (with one set of PromQL overrides), asked for all of its versions at
once. It must never word or judge a number, and never ask a source once per deployment."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from deployments import kpi as kpi_module
from deployments.models import Deployment
from monitoring.analyzer import metrics_source_for
from monitoring.durations import parse_duration
from monitoring.kpi import batch_kpi_values
from monitoring.slo import BURN_WINDOWS, SLO_WINDOW_SECONDS
from monitoring.sources.base import (
    FeatureCounts,
    MetricsUnavailable,
    NoData,
    Series,
    VersionKey,
    WindowStats,
)
from monitoring.sources.local import LocalScrapeSource
from monitoring.sources.prometheus import PrometheusSource

# The range series the tiles draw besides the window's own per-interval samples.
SPARK_SERIES = ("latency_p99", "rejections", "predictions")


@dataclass
class SourceBatch:
    """What one source answered for the versions of one environment; a version it could not
    answer for maps to `MetricsUnavailable`, never to a number."""

    stats: dict[VersionKey, WindowStats | MetricsUnavailable] = field(default_factory=dict)
    series: dict[str, dict[VersionKey, Series | MetricsUnavailable]] = field(default_factory=dict)
    features: dict[VersionKey, FeatureCounts | MetricsUnavailable] = field(default_factory=dict)
    burn: dict[str, dict[VersionKey, Series | MetricsUnavailable]] = field(default_factory=dict)
    slo_requests: dict[VersionKey, Series | MetricsUnavailable] = field(default_factory=dict)
    slo_errors: dict[VersionKey, Series | MetricsUnavailable] = field(default_factory=dict)
    kpis: dict[VersionKey, float | MetricsUnavailable] = field(default_factory=dict)
    # The error budget's window: the SLO window, or less when the source keeps less history.
    slo_window_seconds: float = SLO_WINDOW_SECONDS
    horizon_label: str = ""  # how we know how far back the source keeps data
    skipped_burn_windows: tuple[str, ...] = ()
    unavailable: str = ""  # why there is no source at all, or why it stopped being asked

    def missing(self, key: VersionKey) -> MetricsUnavailable:
        """What a version the batch holds no answer for reads as."""
        return MetricsUnavailable(self.unavailable or "not asked", key=key)


def overrides_key(deployment: Deployment) -> str:
    """Deployments with equal PromQL overrides in one environment share one batch."""
    queries = deployment.config.metrics_queries if deployment.config else {}
    return json.dumps(kpi_module.query_templates(queries), sort_keys=True)


def ask_source(
    deployment: Deployment,
    keys: list[VersionKey],
    kpis: list[tuple[VersionKey, kpi_module.KpiDefinition]],
    window: float,
    step: float,
    end: float,
) -> SourceBatch:
    """Ask the source of `deployment`'s environment (with its overrides) about every version in
    `keys` at once; `kpis` are the business KPIs to read for some of them."""
    environment = deployment.environment
    batch = SourceBatch()
    if not keys:
        return batch
    overrides = kpi_module.query_templates(
        deployment.config.metrics_queries if deployment.config else {}
    )
    try:
        source = metrics_source_for(
            environment.metrics_kind,
            environment.metrics_url,
            overrides,
            environment.metrics_scrape_interval_seconds,
        )
    except ValueError as exc:  # an unknown template name in the deployment's overrides
        batch.unavailable = f"the PromQL overrides are invalid: {exc}"
        return batch
    if source is None:
        batch.unavailable = f"{environment.name} has no metrics source"
        return batch
    try:
        horizon, batch.horizon_label = source_horizon(source)
        batch.slo_window_seconds = min(SLO_WINDOW_SECONDS, horizon or SLO_WINDOW_SECONDS)
        batch.stats = source.batch_window_stats(keys, window, end, step)
        failures = [v for v in batch.stats.values() if isinstance(v, MetricsUnavailable)]
        if len(failures) == len(batch.stats) and not any(isinstance(v, NoData) for v in failures):
            # The source itself is failing (unreachable, timing out): every further question
            # would wait for the same timeout, so the page stops asking and says why.
            batch.unavailable = failures[0].reason
            return batch
        for name in SPARK_SERIES:
            batch.series[name] = source.batch_series(keys, name, window, step, end)
        batch.features = source.batch_feature_counts(keys, window, end)
        usable = [w for w in BURN_WINDOWS if horizon is None or parse_duration(w) <= horizon]
        batch.skipped_burn_windows = tuple(w for w in BURN_WINDOWS if w not in usable)
        for label in usable:
            seconds = parse_duration(label)
            batch.burn[label] = source.batch_series(keys, "error_rate", seconds, seconds, end)
        slo = batch.slo_window_seconds
        batch.slo_requests = source.batch_series(keys, "requests", slo, slo, end)
        batch.slo_errors = source.batch_series(keys, "errors", slo, slo, end)
        batch.kpis = batch_kpi_values(source, kpis, window, end)
    finally:
        if isinstance(source, PrometheusSource):
            source.close()
    return batch


def source_horizon(source: Any) -> tuple[float | None, str]:
    """How far back the source keeps data (seconds, None when unknown) and how we know."""
    if isinstance(source, LocalScrapeSource):
        return source.retention_seconds, "local scrape retention"
    if isinstance(source, PrometheusSource):
        try:
            response = httpx.get(
                f"{source.url}/api/v1/status/flags", timeout=source.timeout_seconds
            )
            response.raise_for_status()
            retention = response.json()["data"].get("storage.tsdb.retention.time", "")
            # "0s" when only a size limit is set: no time limit we could use.
            seconds = parse_duration(str(retention))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None, "Prometheus retention unknown"
        return (seconds or None), "Prometheus retention"
    return None, "retention unknown"
