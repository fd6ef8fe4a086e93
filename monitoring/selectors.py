"""Monitoring tiles for the pages: per deployment and per track (stable, canary, shadow), the
request rate, error rate, latency quantiles, input rejections, drift, cost, error budget and
burn-rate alerts, and the last rollback, each with a sparkline, plus a health rank that sorts
the overview worst-first.

Every environment's metrics source is asked with the batch methods, once per environment (and
per distinct set of PromQL overrides), so a page costs a bounded number of round trips whatever
the number of deployments. It must never show a failed or missing number as 0: such a tile says
"no data". It reads only; it never writes and never decides who may see what (the deployment
list it is given is already restricted).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx
from django.utils import timezone

from core.errors import ValidationFailed
from deployments import kpi as kpi_module
from deployments import selectors as deployment_selectors
from deployments.models import Deployment, Release, ReleaseState, RollbackState, Strategy
from monitoring.analyzer import metrics_source_for
from monitoring.cost import CostRates, budget_status, cost_per_1000, hourly_cost
from monitoring.drift import DriftReport, DriftStatus, DriftThresholds, drift_report
from monitoring.kpi import batch_kpi_values
from monitoring.slo import DEFAULT_BURN_RATE_RULES, BurnAlert, Severity, burn_rate_alerts
from monitoring.slo import error_budget as compute_error_budget
from monitoring.slo import window_seconds as duration_seconds
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

# The windows a page offers, and the default.
WINDOWS: dict[str, int] = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
DEFAULT_WINDOW = "1h"
SPARK_POINTS = 30
# The SLO window of the error budget (the SRE workbook's four weeks); shorter when the source
# keeps less history, and then labelled as such.
SLO_WINDOW_SECONDS = 28 * 86400
# The windows the multi-burn-rate rules need (1h/5m, 6h/30m, 3d/6h).
BURN_WINDOWS = tuple(
    sorted(
        {w for rule in DEFAULT_BURN_RATE_RULES for w in (rule.long_window, rule.short_window)},
        key=duration_seconds,
    )
)
ERROR_BUDGET_WARN_REMAINING = 0.25
NO_DATA = "no data"

TRACK_OF_STRATEGY = {
    Strategy.CANARY: "canary",
    Strategy.SHADOW: "shadow",
    Strategy.BLUE_GREEN: "preview",
    Strategy.ROLLING: "rolling",
}
# A release in these states has nothing running of its own yet.
_NOT_DEPLOYED = frozenset({ReleaseState.AWAITING_APPROVAL, ReleaseState.APPROVED})


class TileStatus(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    NO_DATA = "no_data"
    INFO = "info"


class Health(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    HEALTHY = "healthy"
    NO_DATA = "no_data"

    @property
    def rank(self) -> int:
        """Sort key of the overview: failing first, then warnings, healthy, no data."""
        return _HEALTH_RANK[self]

    @property
    def label(self) -> str:
        return _HEALTH_LABEL[self]


_HEALTH_RANK = {Health.CRITICAL: 0, Health.WARNING: 1, Health.HEALTHY: 2, Health.NO_DATA: 3}
_HEALTH_LABEL = {
    Health.CRITICAL: "Failing",
    Health.WARNING: "Warning",
    Health.HEALTHY: "Healthy",
    Health.NO_DATA: "No data",
}


@dataclass(frozen=True)
class Tile:
    """One number on a page, already worded: `text` is "no data" whenever `value` is unknown."""

    key: str
    label: str
    text: str
    status: TileStatus
    value: float | None = None
    detail: str = ""
    spark: tuple[float | None, ...] = ()

    @property
    def has_data(self) -> bool:
        return self.status != TileStatus.NO_DATA


def _no_data(key: str, label: str, detail: str) -> Tile:
    return Tile(key, label, NO_DATA, TileStatus.NO_DATA, None, detail)


@dataclass(frozen=True)
class TrackHealth:
    """What one version serving one track of a deployment did over the window."""

    track: str  # stable | canary | shadow | preview | rolling
    version_number: int
    key: VersionKey
    tiles: tuple[Tile, ...]
    health: Health
    reasons: tuple[str, ...]
    drift: DriftReport | None = None
    burn_alerts: tuple[BurnAlert, ...] = ()

    def tile(self, key: str) -> Tile | None:
        return next((tile for tile in self.tiles if tile.key == key), None)

    @property
    def summary_tiles(self) -> tuple[Tile, ...]:
        """The few tiles the overview shows per track."""
        wanted = ("request_rate", "error_rate", "latency_p95", "drift", "error_budget", "burn")
        return tuple(tile for key in wanted if (tile := self.tile(key)) is not None)


@dataclass(frozen=True)
class DeploymentHealth:
    deployment: Deployment
    release: Release | None
    tracks: tuple[TrackHealth, ...]
    tiles: tuple[Tile, ...]  # deployment-wide: cost per hour, monthly budget, rollback
    health: Health
    reasons: tuple[str, ...]
    window_label: str
    slo_window_label: str
    notes: tuple[str, ...] = ()

    @property
    def rank(self) -> tuple[int, str, str]:
        return (self.health.rank, self.deployment.environment.name, self.deployment.name)


# Selectors the pages call --------------------------------------------------------------------


def window_of(label: str | None) -> tuple[str, int]:
    """A page's window choice as (label, seconds); an unknown label is a 4xx, not a guess."""
    chosen = label or DEFAULT_WINDOW
    if chosen not in WINDOWS:
        raise ValidationFailed(f"must be one of {', '.join(WINDOWS)}", field="window")
    return chosen, WINDOWS[chosen]


def monitoring_overview(principal: Any, window_seconds: float) -> list[DeploymentHealth]:
    """Every deployment the principal may see, worst first."""
    deployments = list(deployment_selectors.deployment_list(principal))
    return sorted(
        deployment_health(deployments, window_seconds, window_seconds / SPARK_POINTS),
        key=lambda health: health.rank,
    )


def deployment_monitoring(
    principal: Any, deployment_id: int | str, window_seconds: float
) -> DeploymentHealth:
    deployment = deployment_selectors.deployment_get(principal, deployment_id)
    (health,) = deployment_health([deployment], window_seconds, window_seconds / SPARK_POINTS)
    return health


# The tiles -----------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What one source answered for the versions of one environment."""

    stats: dict[VersionKey, WindowStats | MetricsUnavailable] = field(default_factory=dict)
    series: dict[str, dict[VersionKey, Series | MetricsUnavailable]] = field(default_factory=dict)
    features: dict[VersionKey, FeatureCounts | MetricsUnavailable] = field(default_factory=dict)
    burn: dict[str, dict[VersionKey, Series | MetricsUnavailable]] = field(default_factory=dict)
    slo_requests: dict[VersionKey, Series | MetricsUnavailable] = field(default_factory=dict)
    slo_errors: dict[VersionKey, Series | MetricsUnavailable] = field(default_factory=dict)
    kpis: dict[VersionKey, float | MetricsUnavailable] = field(default_factory=dict)
    slo_window_seconds: float = SLO_WINDOW_SECONDS
    slo_window_label: str = "28d"
    skipped_burn_windows: tuple[str, ...] = ()
    unavailable: str = ""  # why there is no source at all


def deployment_health(
    deployments: Sequence[Deployment],
    window_seconds: float,
    step_seconds: float,
    *,
    end: float | None = None,
) -> list[DeploymentHealth]:
    """Tiles for every deployment and track, asking each environment's source once (batched)
    for all of its versions. Deployments should come from `deployments.selectors.
    deployment_list` (config, versions, active release and rollbacks already joined), so this
    adds no SQL beyond what the sources themselves run."""
    if not (window_seconds > 0 and step_seconds > 0):
        raise ValueError("window_seconds and step_seconds must be positive")
    end_ts = timezone.now().timestamp() if end is None else float(end)
    tracks = {deployment.pk: _tracks_of(deployment) for deployment in deployments}
    groups: dict[tuple[int, str], list[Deployment]] = defaultdict(list)
    for deployment in deployments:
        groups[(deployment.environment_id, _overrides_key(deployment))].append(deployment)
    batches: dict[int, _Batch] = {}
    for group in groups.values():
        keys = [key for d in group for _, _, key in tracks[d.pk]]
        kpis = _kpis_of(group, tracks)
        batch = _ask(group[0], keys, kpis, window_seconds, step_seconds, end_ts)
        batches.update({d.pk: batch for d in group})
    return [
        _deployment_health(d, tracks[d.pk], batches[d.pk], window_seconds, step_seconds, end_ts)
        for d in deployments
    ]


def _tracks_of(deployment: Deployment) -> list[tuple[str, Any, VersionKey]]:
    """(track, model version, key) per version the deployment serves."""
    model = deployment.model.name
    found = []
    if deployment.stable_version is not None:
        stable = deployment.stable_version
        found.append(("stable", stable, VersionKey(model, stable.number)))
    release = deployment_selectors.active_release(deployment)
    if (
        release is not None
        and release.state not in _NOT_DEPLOYED
        and release.version_id != deployment.stable_version_id
    ):
        track = TRACK_OF_STRATEGY.get(release.strategy, str(release.strategy))
        found.append((track, release.version, VersionKey(model, release.version.number)))
    return found


def _overrides_key(deployment: Deployment) -> str:
    queries = deployment.config.metrics_queries if deployment.config else {}
    return json.dumps(kpi_module.query_templates(queries), sort_keys=True)


def _kpis_of(
    group: Sequence[Deployment], tracks: Mapping[int, list[tuple[str, Any, VersionKey]]]
) -> list[tuple[VersionKey, kpi_module.KpiDefinition]]:
    wanted = []
    for deployment in group:
        definition = _kpi_definition(deployment)
        if isinstance(definition, kpi_module.KpiDefinition):
            wanted += [(key, definition) for _, _, key in tracks[deployment.pk]]
    return wanted


def _kpi_definition(deployment: Deployment) -> kpi_module.KpiDefinition | str | None:
    """The deployment's KPI, None without one, or why the stored one is unusable."""
    if deployment.config is None:
        return None
    try:
        return kpi_module.kpi_of(deployment.config.metrics_queries)
    except ValidationFailed as exc:
        return f"the stored KPI is invalid: {exc.field}: {exc.reason}"


def _ask(
    deployment: Deployment,
    keys: list[VersionKey],
    kpis: list[tuple[VersionKey, kpi_module.KpiDefinition]],
    window: float,
    step: float,
    end: float,
) -> _Batch:
    environment = deployment.environment
    batch = _Batch()
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
        horizon, horizon_label = _horizon_of(source)
        batch.slo_window_seconds = min(SLO_WINDOW_SECONDS, horizon or SLO_WINDOW_SECONDS)
        batch.slo_window_label = _slo_window_label(batch.slo_window_seconds, horizon_label)
        batch.stats = source.batch_window_stats(keys, window, end, step)
        failures = [v for v in batch.stats.values() if isinstance(v, MetricsUnavailable)]
        if len(failures) == len(batch.stats) and not any(isinstance(v, NoData) for v in failures):
            # The source itself is failing (unreachable, timing out): every further question
            # would wait for the same timeout, so the page stops asking and says why.
            batch.unavailable = failures[0].reason
            return batch
        for name in ("latency_p99", "rejections", "predictions"):
            batch.series[name] = source.batch_series(keys, name, window, step, end)
        batch.features = source.batch_feature_counts(keys, window, end)
        usable, skipped = [], []
        for label in BURN_WINDOWS:
            seconds = duration_seconds(label)
            (usable if horizon is None or seconds <= horizon else skipped).append(label)
        batch.skipped_burn_windows = tuple(skipped)
        for label in usable:
            seconds = duration_seconds(label)
            batch.burn[label] = source.batch_series(keys, "error_rate", seconds, seconds, end)
        slo = batch.slo_window_seconds
        batch.slo_requests = source.batch_series(keys, "requests", slo, slo, end)
        batch.slo_errors = source.batch_series(keys, "errors", slo, slo, end)
        batch.kpis = batch_kpi_values(source, kpis, window, end)
    finally:
        if isinstance(source, PrometheusSource):
            source.close()
    return batch


def _horizon_of(source: Any) -> tuple[float | None, str]:
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
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None, "Prometheus retention unknown"
        seconds = prometheus_duration_seconds(str(retention))
        return (seconds or None), "Prometheus retention"
    return None, "retention unknown"


_PROM_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_PROM_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def prometheus_duration_seconds(text: str) -> float:
    """A Prometheus duration such as "15d", "1h30m" or "2w" in seconds; 0 when unparseable."""
    text = text.strip()
    parts = _PROM_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return 0.0
    return sum(int(number) * _PROM_UNITS[unit] for number, unit in parts)


def _slo_window_label(seconds: float, horizon_label: str) -> str:
    label = _duration_label(seconds)
    if seconds < SLO_WINDOW_SECONDS:
        return f"{label} (longest available: {horizon_label}; the SLO window is 28d)"
    return label


def _duration_label(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _deployment_health(
    deployment: Deployment,
    tracks: list[tuple[str, Any, VersionKey]],
    batch: _Batch,
    window: float,
    step: float,
    end: float,
) -> DeploymentHealth:
    config = deployment.config
    rates = _rates_of(deployment)
    hourly = _hourly_cost(config, rates)
    kpi_definition = _kpi_definition(deployment)
    notes = []
    if batch.unavailable:
        notes.append(batch.unavailable)
    if batch.skipped_burn_windows:
        notes.append(
            f"burn-rate windows {', '.join(batch.skipped_burn_windows)} are longer than the "
            "source keeps data: the rules that need them are not evaluated"
        )
    if isinstance(kpi_definition, str):
        notes.append(kpi_definition)
    elif kpi_definition is not None and deployment.environment.metrics_kind != "prometheus":
        notes.append(
            f"business KPI {kpi_definition.name!r} is skipped: it needs a Prometheus source, "
            f"and {deployment.environment.name} uses {deployment.environment.metrics_kind}"
        )
    track_healths = tuple(
        _track_health(
            track,
            version,
            key,
            batch,
            config,
            hourly,
            kpi_definition
            if isinstance(kpi_definition, kpi_module.KpiDefinition)
            and deployment.environment.metrics_kind == "prometheus"
            else None,
            window,
            step,
        )
        for track, version, key in tracks
    )
    tiles = (
        _cost_total_tile(hourly, len(track_healths)),
        _budget_tile(deployment, config, hourly, len(track_healths), end),
        _rollback_tile(deployment),
    )
    if not track_healths:
        notes.append("nothing is deployed")
    health, reasons = _worst(track_healths, tiles)
    return DeploymentHealth(
        deployment=deployment,
        release=deployment_selectors.active_release(deployment),
        tracks=track_healths,
        tiles=tiles,
        health=health,
        reasons=reasons,
        window_label=_duration_label(window),
        slo_window_label=batch.slo_window_label,
        notes=tuple(notes),
    )


def _worst(tracks: Sequence[TrackHealth], tiles: Sequence[Tile]) -> tuple[Health, tuple[str, ...]]:
    reasons = [f"{t.track} v{t.version_number}: {r}" for t in tracks for r in t.reasons]
    reasons += [f"{tile.label}: {tile.text}" for tile in tiles if tile.status == TileStatus.FAIL]
    reasons += [f"{tile.label}: {tile.text}" for tile in tiles if tile.status == TileStatus.WARN]
    statuses = [t.health for t in tracks]
    if any(tile.status == TileStatus.FAIL for tile in tiles):
        statuses.append(Health.CRITICAL)
    elif any(tile.status == TileStatus.WARN for tile in tiles):
        statuses.append(Health.WARNING)
    if not statuses:
        return Health.NO_DATA, tuple(reasons)
    return min(statuses, key=lambda h: h.rank), tuple(reasons)


def _track_health(
    track: str,
    version: Any,
    key: VersionKey,
    batch: _Batch,
    config: Any,
    hourly: float | None,
    kpi_definition: kpi_module.KpiDefinition | None,
    window: float,
    step: float,
) -> TrackHealth:
    unavailable = MetricsUnavailable(batch.unavailable or "not asked", key=key)
    stats = batch.stats.get(key, unavailable)
    series = {name: found.get(key, unavailable) for name, found in batch.series.items()}
    tiles: list[Tile] = []
    if isinstance(stats, WindowStats):
        tiles += _traffic_tiles(stats, series, config, window, step)
    else:
        reason = _reason(stats)
        tiles += [
            _no_data("request_rate", "Request rate", reason),
            _no_data("error_rate", "Error rate", reason),
            _no_data("latency_p50", "Latency p50", reason),
            _no_data("latency_p95", "Latency p95", reason),
            _no_data("latency_p99", "Latency p99", reason),
            _no_data("rejection_rate", "Input rejections", reason),
        ]
    drift_tile, report = _drift_tile(version, batch.features.get(key, unavailable), config)
    tiles.append(drift_tile)
    tiles.append(_cost_hour_tile(hourly))
    tiles.append(_cost_per_1000_tile(stats, series.get("predictions"), hourly, window, step))
    budget_tile = _error_budget_tile(key, batch, config, unavailable)
    burn_tile, alerts = _burn_tile(key, batch, config, unavailable)
    tiles += [budget_tile, burn_tile]
    if kpi_definition is not None:
        tiles.append(_kpi_tile(kpi_definition, batch.kpis.get(key, unavailable)))
    failing = [t for t in tiles if t.status == TileStatus.FAIL]
    warning = [t for t in tiles if t.status == TileStatus.WARN]
    if failing:
        health = Health.CRITICAL
    elif warning:
        health = Health.WARNING
    elif not isinstance(stats, WindowStats):
        health = Health.NO_DATA
    else:
        health = Health.HEALTHY
    reasons = tuple(f"{t.label} {t.text}" for t in (*failing, *warning))
    return TrackHealth(
        track=track,
        version_number=version.number,
        key=key,
        tiles=tuple(tiles),
        health=health,
        reasons=reasons,
        drift=report,
        burn_alerts=tuple(alerts),
    )


def _reason(value: Any) -> str:
    return value.reason if isinstance(value, MetricsUnavailable) else ""


def _traffic_tiles(
    stats: WindowStats,
    series: Mapping[str, Series | MetricsUnavailable],
    config: Any,
    window: float,
    step: float,
) -> list[Tile]:
    samples = stats.samples
    rate_spark = tuple(s.requests / step for s in samples)
    tiles = [
        Tile(
            "request_rate",
            "Request rate",
            f"{stats.requests / window:.3g} req/s",
            TileStatus.OK,
            stats.requests / window,
            f"{stats.requests:.0f} requests in {_duration_label(window)}",
            rate_spark,
        )
    ]
    error_spark = tuple(s.error_rate for s in samples)
    if stats.error_rate is None:
        tiles.append(
            Tile("error_rate", "Error rate", NO_DATA, TileStatus.NO_DATA, None, "no requests")
        )
    else:
        limit = config.slo_error_rate if config else None
        over = limit is not None and stats.error_rate > limit
        tiles.append(
            Tile(
                "error_rate",
                "Error rate",
                _percent(stats.error_rate),
                TileStatus.FAIL if over else TileStatus.OK,
                stats.error_rate,
                f"{stats.errors:.0f} of {stats.requests:.0f} answered 5xx"
                + (f"; SLO ≤ {_percent(limit)}" if limit is not None else ""),
                error_spark,
            )
        )
    slo_p95 = config.slo_latency_p95_ms / 1000 if config else None
    p99_series = series.get("latency_p99")
    quantiles = (
        ("latency_p50", "Latency p50", stats.latency_p50, tuple(s.p50 for s in samples), None),
        ("latency_p95", "Latency p95", stats.latency_p95, tuple(s.p95 for s in samples), slo_p95),
        ("latency_p99", "Latency p99", stats.latency_p99, _points(p99_series), None),
    )
    for key, label, value, spark, limit in quantiles:
        if value is None:
            tiles.append(_no_data(key, label, "no requests in the window"))
            continue
        over = limit is not None and value > limit
        tiles.append(
            Tile(
                key,
                label,
                _ms(value),
                TileStatus.FAIL if over else TileStatus.OK,
                value,
                f"SLO ≤ {_ms(limit)}" if limit is not None else "",
                spark,
            )
        )
    rejection_series = series.get("rejections")
    if stats.requests > 0:
        share = stats.rejections / stats.requests
        by_t = {s.t: s.requests for s in samples}
        spark = tuple(
            (value / by_t[t]) if value is not None and by_t.get(t) else None
            for t, value in (
                rejection_series.points if isinstance(rejection_series, Series) else ()
            )
        )
        tiles.append(
            Tile(
                "rejection_rate",
                "Input rejections",
                _percent(share),
                TileStatus.OK,
                share,
                f"{stats.rejections:.0f} requests rejected as invalid input (4xx)",
                spark,
            )
        )
    else:
        tiles.append(_no_data("rejection_rate", "Input rejections", "no requests"))
    return tiles


def _points(series: Series | MetricsUnavailable | None) -> tuple[float | None, ...]:
    return tuple(value for _, value in series.points) if isinstance(series, Series) else ()


def _drift_tile(
    version: Any, counts: FeatureCounts | MetricsUnavailable, config: Any
) -> tuple[Tile, DriftReport | None]:
    label = "Drift"
    baseline = version.baseline_profile or {}
    if not baseline.get("features"):
        return _no_data("drift", label, f"v{version.number} has no baseline profile"), None
    if isinstance(counts, MetricsUnavailable):
        return _no_data("drift", label, counts.reason), None
    thresholds = DriftThresholds(
        warn=config.drift_warn if config else 0.1, alert=config.drift_alert if config else 0.25
    )
    try:
        report = drift_report(baseline, _live_counts(counts), thresholds)
    except ValueError as exc:  # live buckets that do not match the baseline's bins
        return _no_data("drift", label, f"live histograms do not fit the baseline: {exc}"), None
    judged = [
        f for f in (*report.features.values(), report.prediction) if f and f.value is not None
    ]
    if not judged:
        reasons = {f.reason for f in report.features.values() if f.reason}
        return _no_data("drift", label, "; ".join(sorted(reasons)) or "nothing to judge"), report
    worst = max(judged, key=lambda f: (_DRIFT_SEVERITY[f.status], f.value or 0.0))
    status = {
        DriftStatus.OK: TileStatus.OK,
        DriftStatus.WARN: TileStatus.WARN,
        DriftStatus.ALERT: TileStatus.FAIL,
        DriftStatus.INSUFFICIENT_DATA: TileStatus.NO_DATA,
    }[report.status]
    metric = "PSI" if worst.metric == "psi" else "JS"
    detail = (
        f"overall {report.status}; worst {worst.name} ({metric}); "
        f"PSI warn ≥ {thresholds.warn:g}, alert ≥ {thresholds.alert:g}; "
        f"JS warn ≥ {thresholds.js_warn:g}, alert ≥ {thresholds.js_alert:g}"
    )
    if report.status == DriftStatus.INSUFFICIENT_DATA:
        # Some features were judged, others lack data: show the worst number, say what's missing.
        status = TileStatus.INFO
        detail += "; some features have too few live observations"
    return (
        Tile(
            "drift",
            label,
            f"{metric} {worst.value:.3f} ({worst.name})",
            status,
            worst.value,
            detail,
        ),
        report,
    )


_DRIFT_SEVERITY = {
    DriftStatus.OK: 0,
    DriftStatus.INSUFFICIENT_DATA: 0,
    DriftStatus.WARN: 1,
    DriftStatus.ALERT: 2,
}


def _live_counts(counts: FeatureCounts) -> dict[str, Any]:
    """FeatureCounts in drift_report's shape: cumulative `le` buckets for numeric features (so
    their bounds are checked against the baseline's edges), category counts, class counts."""
    features: dict[str, Any] = {}
    for name, numeric in counts.numeric.items():
        cumulative = itertools.accumulate(numeric.counts)
        features[name] = dict(zip(numeric.upper_bounds, cumulative, strict=True))
    for name, categories in counts.categorical.items():
        features[name] = dict(categories)
    live: dict[str, Any] = {"features": features}
    if counts.prediction_classes:
        live["prediction"] = dict(counts.prediction_classes)
    return live


def _rates_of(deployment: Deployment) -> CostRates | None:
    env = deployment.environment
    rates = CostRates(
        float(env.vcpu_hour_price), float(env.gib_hour_price), float(env.gpu_hour_price)
    )
    return rates if (rates.vcpu_hour or rates.gib_hour or rates.gpu_hour) else None


def _hourly_cost(config: Any, rates: CostRates | None) -> float | None:
    """Per track: replicas x max(request, usage); usage is not measured here, so requests."""
    if config is None or rates is None:
        return None
    return hourly_cost(
        config.cpu_request,
        config.cpu_request,
        config.memory_request,
        config.memory_request,
        config.gpu,
        config.replicas,
        rates,
    )


_COST_BASIS = (
    "requests x replicas (usage unknown here, so requests stand in for max(request, usage))"
)


def _cost_hour_tile(hourly: float | None) -> Tile:
    if hourly is None:
        return _no_data("cost_hour", "Cost per hour", "no configuration or no prices set")
    return Tile("cost_hour", "Cost per hour", _money(hourly), TileStatus.INFO, hourly, _COST_BASIS)


def _cost_per_1000_tile(
    stats: WindowStats | MetricsUnavailable,
    predictions: Series | MetricsUnavailable | None,
    hourly: float | None,
    window: float,
    step: float,
) -> Tile:
    key, label = "cost_per_1000", "Cost per 1,000 predictions"
    if hourly is None:
        return _no_data(key, label, "no configuration or no prices set")
    if not isinstance(stats, WindowStats):
        return _no_data(key, label, _reason(stats))
    value = cost_per_1000(hourly * window / 3600, stats.predictions)
    if value is None:
        return _no_data(key, label, f"no predictions in {_duration_label(window)}")
    spark = tuple(
        cost_per_1000(hourly * step / 3600, count) if count is not None else None
        for count in _points(predictions)
    )
    return Tile(
        key,
        label,
        _money(value),
        TileStatus.INFO,
        value,
        f"{stats.predictions:.0f} predictions in {_duration_label(window)}",
        spark,
    )


def _cost_total_tile(hourly: float | None, track_count: int) -> Tile:
    if hourly is None:
        return _no_data("cost_total", "Cost per hour", "no configuration or no prices set")
    total = hourly * max(track_count, 1)
    return Tile(
        "cost_total",
        "Cost per hour",
        _money(total),
        TileStatus.INFO,
        total,
        f"{max(track_count, 1)} track(s); {_COST_BASIS}",
    )


def _budget_tile(
    deployment: Deployment, config: Any, hourly: float | None, track_count: int, end: float
) -> Tile:
    key, label = "budget", "Monthly budget"
    if config is None or config.monthly_budget is None:
        return Tile(
            key, label, "none set", TileStatus.INFO, None, "no monthly budget on the config"
        )
    if hourly is None:
        return _no_data(key, label, "no prices set for the environment")
    now = datetime.fromtimestamp(end, tz=timezone.get_current_timezone())
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = max(month_start, deployment.created_at)
    hours = max((now - since).total_seconds(), 0.0) / 3600
    status = budget_status(hourly * max(track_count, 1) * hours, float(config.monthly_budget))
    tile_status = {"ok": TileStatus.OK, "warning": TileStatus.WARN, "exceeded": TileStatus.FAIL}[
        str(status.state)
    ]
    if tile_status == TileStatus.FAIL:
        tile_status = TileStatus.WARN  # over budget is a cost problem, not an outage
    return Tile(
        key,
        label,
        f"{status.share:.0%} used",
        tile_status,
        status.share,
        f"{_money(status.month_to_date)} of {_money(status.monthly_budget)} this month "
        f"(estimate: current allocation x {hours:.0f} h)",
    )


def _rollback_tile(deployment: Deployment) -> Tile:
    rollback = deployment_selectors.last_rollback(deployment)
    if rollback is None:
        return Tile("rollback", "Last rollback", "never", TileStatus.INFO, None, "")
    when = timezone.localtime(rollback.created_at).strftime("%Y-%m-%d %H:%M")
    who = rollback.actor_label + (" (automatic)" if rollback.automatic else "")
    status = {
        RollbackState.DONE: TileStatus.INFO,
        RollbackState.PENDING: TileStatus.WARN,
        RollbackState.FAILED: TileStatus.FAIL,
    }.get(rollback.state, TileStatus.INFO)
    return Tile(
        "rollback",
        "Last rollback",
        f"to v{rollback.to_version.number}",
        status,
        None,
        f"by {who} at {when}; {rollback.get_state_display().lower()}"
        + (f": {rollback.reason}" if rollback.reason else ""),
    )


def _error_budget_tile(
    key: VersionKey, batch: _Batch, config: Any, unavailable: MetricsUnavailable
) -> Tile:
    tile_key, label = "error_budget", "Error budget"
    if config is None:
        return _no_data(tile_key, label, "no SLO configured")
    requests = batch.slo_requests.get(key, unavailable)
    errors = batch.slo_errors.get(key, unavailable)
    if not isinstance(requests, Series):
        return _no_data(tile_key, label, _reason(requests))
    total = _single(requests)
    if total is None:
        return _no_data(tile_key, label, "no request count over the SLO window")
    if isinstance(errors, Series):
        bad = min(_single(errors) or 0.0, total)
    elif isinstance(errors, NoData):
        # Request series exist, so a missing 5xx series means no 5xx yet (docs/monitoring.md).
        bad = 0.0
    else:
        return _no_data(tile_key, label, _reason(errors))
    budget = compute_error_budget(config.slo_availability, total - bad, total)
    if budget.remaining < 0:
        status = TileStatus.FAIL
    elif budget.remaining < ERROR_BUDGET_WARN_REMAINING:
        status = TileStatus.WARN
    else:
        status = TileStatus.OK
    return Tile(
        tile_key,
        label,
        f"{budget.remaining:.0%} left",
        status,
        budget.remaining,
        f"{budget.bad:.0f} bad of {budget.total:.0f} requests, {budget.allowed:.1f} allowed at "
        f"{config.slo_availability:.3%} over {batch.slo_window_label}",
    )


def _single(series: Series) -> float | None:
    values = [value for _, value in series.points if value is not None]
    return values[-1] if values else None


def _burn_tile(
    key: VersionKey, batch: _Batch, config: Any, unavailable: MetricsUnavailable
) -> tuple[Tile, list[BurnAlert]]:
    tile_key, label = "burn", "Burn rate"
    if config is None:
        return _no_data(tile_key, label, "no SLO configured"), []
    ratios: dict[str, float] = {}
    for window, found in batch.burn.items():
        series = found.get(key, unavailable)
        if isinstance(series, Series) and (ratio := _single(series)) is not None:
            ratios[window] = ratio
    if not ratios:
        reason = next(
            (_reason(found.get(key)) for found in batch.burn.values() if found.get(key)), ""
        )
        return _no_data(tile_key, label, reason or batch.unavailable or "no requests"), []
    objective = config.slo_availability
    alerts = burn_rate_alerts(ratios, objective)
    shortest = min(ratios, key=duration_seconds)
    known = ", ".join(
        f"{w} {ratios[w] / (1 - objective):.1f}x" for w in sorted(ratios, key=duration_seconds)
    )
    pages = [a for a in alerts if a.severity == Severity.PAGE]
    tickets = [a for a in alerts if a.severity == Severity.TICKET]
    if pages:
        first = pages[0]
        text = f"page: {first.long_window}/{first.short_window} > {first.threshold:g}x"
        status = TileStatus.FAIL
    elif tickets:
        first = tickets[0]
        text = f"ticket: {first.long_window}/{first.short_window} > {first.threshold:g}x"
        status = TileStatus.WARN
    else:
        text = f"{ratios[shortest] / (1 - objective):.1f}x over {shortest}"
        status = TileStatus.OK
    return Tile(tile_key, label, text, status, None, f"burn rates: {known}"), alerts


def _kpi_tile(definition: kpi_module.KpiDefinition, value: float | MetricsUnavailable) -> Tile:
    arrow = "↑" if definition.good_direction == "up" else "↓"
    detail = (
        f"higher is better {arrow}"
        if definition.good_direction == "up"
        else (f"lower is better {arrow}")
    )
    if isinstance(value, MetricsUnavailable):
        return _no_data("kpi", definition.name, value.reason)
    unit = f" {definition.unit}" if definition.unit else ""
    return Tile("kpi", definition.name, f"{value:.4g}{unit}", TileStatus.INFO, value, detail)


# Wording ---------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    if value == 0:
        return "0%"
    return f"{value:.2%}" if value < 0.1 else f"{value:.1%}"


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.3g} ms" if ms < 1000 else f"{seconds:.3g} s"


def _money(amount: float) -> str:
    if amount != 0 and abs(amount) < 0.01:
        return f"{amount:.4f}"
    return f"{amount:,.2f}"


def health_counts(healths: Iterable[DeploymentHealth]) -> dict[str, int]:
    """How many deployments are in each health state, for the overview's summary line."""
    counts = {health.value: 0 for health in Health}
    for item in healths:
        counts[item.health.value] += 1
    return counts
