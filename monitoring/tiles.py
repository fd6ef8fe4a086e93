"""The monitoring tiles of a track and of a deployment: each one's value, status, sparkline and
worded detail, from what one `SourceBatch` answered. It must never ask a metrics source or the
database (only rows already joined), and never show a failed or missing number as 0: such a tile
says "no data"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils import timezone

from deployments import kpi as kpi_module
from deployments import selectors as deployment_selectors
from deployments.models import Deployment, RollbackState
from monitoring.batching import SourceBatch
from monitoring.cost import CostRates, budget_status, cost_per_1000, hourly_cost
from monitoring.drift import DriftReport, DriftStatus, DriftThresholds, drift_report, live_counts_of
from monitoring.durations import parse_duration
from monitoring.slo import BurnAlert, Severity, burn_rate_alerts
from monitoring.slo import error_budget as compute_error_budget
from monitoring.sources.base import (
    FeatureCounts,
    MetricsUnavailable,
    NoData,
    Series,
    VersionKey,
    WindowStats,
)
from monitoring.wording import NO_DATA, duration_label, money, ms, percent, slo_window_label

ERROR_BUDGET_WARN_REMAINING = 0.25


class TileStatus(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    NO_DATA = "no_data"
    INFO = "info"


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


def no_data(key: str, label: str, detail: str) -> Tile:
    return Tile(key, label, NO_DATA, TileStatus.NO_DATA, None, detail)


@dataclass(frozen=True)
class TrackTiles:
    """Every tile of one version on one track, with what the health and the page also show."""

    tiles: tuple[Tile, ...]
    has_traffic_data: bool  # the source answered the window's numbers for this version
    drift: DriftReport | None
    burn_alerts: tuple[BurnAlert, ...]


def track_tiles(
    version: Any,
    key: VersionKey,
    batch: SourceBatch,
    config: Any,
    hourly: float | None,
    kpi_definition: kpi_module.KpiDefinition | None,
    window: float,
    step: float,
) -> TrackTiles:
    """The tiles of one version (`key`) serving one track, in the order the page shows them."""
    missing = batch.missing(key)
    stats = batch.stats.get(key, missing)
    series = {name: found.get(key, missing) for name, found in batch.series.items()}
    tiles: list[Tile] = []
    if isinstance(stats, WindowStats):
        tiles += _traffic_tiles(stats, series, config, window, step)
    else:
        reason = _reason(stats)
        tiles += [
            no_data("request_rate", "Request rate", reason),
            no_data("error_rate", "Error rate", reason),
            no_data("latency_p50", "Latency p50", reason),
            no_data("latency_p95", "Latency p95", reason),
            no_data("latency_p99", "Latency p99", reason),
            no_data("rejection_rate", "Input rejections", reason),
        ]
    drift_tile, report = _drift_tile(version, batch.features.get(key, missing), config)
    tiles.append(drift_tile)
    tiles.append(_cost_hour_tile(hourly))
    tiles.append(_cost_per_1000_tile(stats, series.get("predictions"), hourly, window, step))
    tiles.append(_error_budget_tile(key, batch, config))
    burn_tile, alerts = _burn_tile(key, batch, config)
    tiles.append(burn_tile)
    if kpi_definition is not None:
        tiles.append(_kpi_tile(kpi_definition, batch.kpis.get(key, missing)))
    return TrackTiles(tuple(tiles), isinstance(stats, WindowStats), report, tuple(alerts))


def deployment_tiles(
    deployment: Deployment, hourly: float | None, track_count: int, end: float
) -> tuple[Tile, ...]:
    """The deployment-wide tiles: cost per hour of every track, the monthly budget, and the last
    rollback."""
    return (
        _cost_total_tile(hourly, track_count),
        _budget_tile(deployment, deployment.config, hourly, track_count, end),
        _rollback_tile(deployment),
    )


def hourly_cost_of(deployment: Deployment) -> float | None:
    """Per track: replicas x max(request, usage); usage is not measured here, so requests. None
    without a config or without prices."""
    config = deployment.config
    env = deployment.environment
    rates = CostRates(
        float(env.vcpu_hour_price), float(env.gib_hour_price), float(env.gpu_hour_price)
    )
    if config is None or not (rates.vcpu_hour or rates.gib_hour or rates.gpu_hour):
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


def _reason(value: Any) -> str:
    return value.reason if isinstance(value, MetricsUnavailable) else ""


def _points(series: Series | MetricsUnavailable | None) -> tuple[float | None, ...]:
    return tuple(value for _, value in series.points) if isinstance(series, Series) else ()


def _single(series: Series) -> float | None:
    values = [value for _, value in series.points if value is not None]
    return values[-1] if values else None


# Traffic ---------------------------------------------------------------------------------------


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
            f"{stats.requests:.0f} requests in {duration_label(window)}",
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
                percent(stats.error_rate),
                TileStatus.FAIL if over else TileStatus.OK,
                stats.error_rate,
                f"{stats.errors:.0f} of {stats.requests:.0f} answered 5xx"
                + (f"; SLO ≤ {percent(limit)}" if limit is not None else ""),
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
            tiles.append(no_data(key, label, "no requests in the window"))
            continue
        over = limit is not None and value > limit
        tiles.append(
            Tile(
                key,
                label,
                ms(value),
                TileStatus.FAIL if over else TileStatus.OK,
                value,
                f"SLO ≤ {ms(limit)}" if limit is not None else "",
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
                percent(share),
                TileStatus.OK,
                share,
                f"{stats.rejections:.0f} requests rejected as invalid input (4xx)",
                spark,
            )
        )
    else:
        tiles.append(no_data("rejection_rate", "Input rejections", "no requests"))
    return tiles


# Drift -----------------------------------------------------------------------------------------

_DRIFT_SEVERITY = {
    DriftStatus.OK: 0,
    DriftStatus.INSUFFICIENT_DATA: 0,
    DriftStatus.WARN: 1,
    DriftStatus.ALERT: 2,
}
_DRIFT_TILE_STATUS = {
    DriftStatus.OK: TileStatus.OK,
    DriftStatus.WARN: TileStatus.WARN,
    DriftStatus.ALERT: TileStatus.FAIL,
    DriftStatus.INSUFFICIENT_DATA: TileStatus.NO_DATA,
}


def _drift_tile(
    version: Any, counts: FeatureCounts | MetricsUnavailable, config: Any
) -> tuple[Tile, DriftReport | None]:
    label = "Drift"
    baseline = version.baseline_profile or {}
    if not baseline.get("features"):
        return no_data("drift", label, f"v{version.number} has no baseline profile"), None
    if isinstance(counts, MetricsUnavailable):
        return no_data("drift", label, counts.reason), None
    thresholds = DriftThresholds(
        warn=config.drift_warn if config else 0.1, alert=config.drift_alert if config else 0.25
    )
    try:
        report = drift_report(baseline, live_counts_of(counts), thresholds)
    except ValueError as exc:  # live buckets that do not match the baseline's bins
        return no_data("drift", label, f"live histograms do not fit the baseline: {exc}"), None
    judged = [
        f for f in (*report.features.values(), report.prediction) if f and f.value is not None
    ]
    if not judged:
        reasons = {f.reason for f in report.features.values() if f.reason}
        return no_data("drift", label, "; ".join(sorted(reasons)) or "nothing to judge"), report
    worst = max(judged, key=lambda f: (_DRIFT_SEVERITY[f.status], f.value or 0.0))
    status = _DRIFT_TILE_STATUS[report.status]
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
    text = f"{metric} {worst.value:.3f} ({worst.name})"
    return Tile("drift", label, text, status, worst.value, detail), report


# Cost ------------------------------------------------------------------------------------------

_COST_BASIS = (
    "requests x replicas (usage unknown here, so requests stand in for max(request, usage))"
)


def _cost_hour_tile(hourly: float | None) -> Tile:
    if hourly is None:
        return no_data("cost_hour", "Cost per hour", "no configuration or no prices set")
    return Tile("cost_hour", "Cost per hour", money(hourly), TileStatus.INFO, hourly, _COST_BASIS)


def _cost_per_1000_tile(
    stats: WindowStats | MetricsUnavailable,
    predictions: Series | MetricsUnavailable | None,
    hourly: float | None,
    window: float,
    step: float,
) -> Tile:
    key, label = "cost_per_1000", "Cost per 1,000 predictions"
    if hourly is None:
        return no_data(key, label, "no configuration or no prices set")
    if not isinstance(stats, WindowStats):
        return no_data(key, label, _reason(stats))
    value = cost_per_1000(hourly * window / 3600, stats.predictions)
    if value is None:
        return no_data(key, label, f"no predictions in {duration_label(window)}")
    spark = tuple(
        cost_per_1000(hourly * step / 3600, count) if count is not None else None
        for count in _points(predictions)
    )
    return Tile(
        key,
        label,
        money(value),
        TileStatus.INFO,
        value,
        f"{stats.predictions:.0f} predictions in {duration_label(window)}",
        spark,
    )


def _cost_total_tile(hourly: float | None, track_count: int) -> Tile:
    if hourly is None:
        return no_data("cost_total", "Cost per hour", "no configuration or no prices set")
    total = hourly * max(track_count, 1)
    return Tile(
        "cost_total",
        "Cost per hour",
        money(total),
        TileStatus.INFO,
        total,
        f"{max(track_count, 1)} track(s); {_COST_BASIS}",
    )


_BUDGET_TILE_STATUS = {
    "ok": TileStatus.OK,
    "warning": TileStatus.WARN,
    "exceeded": TileStatus.WARN,  # over budget is a cost problem, not an outage
}


def _budget_tile(
    deployment: Deployment, config: Any, hourly: float | None, track_count: int, end: float
) -> Tile:
    key, label = "budget", "Monthly budget"
    if config is None or config.monthly_budget is None:
        return Tile(
            key, label, "none set", TileStatus.INFO, None, "no monthly budget on the config"
        )
    if hourly is None:
        return no_data(key, label, "no prices set for the environment")
    now = datetime.fromtimestamp(end, tz=timezone.get_current_timezone())
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    since = max(month_start, deployment.created_at)
    hours = max((now - since).total_seconds(), 0.0) / 3600
    status = budget_status(hourly * max(track_count, 1) * hours, float(config.monthly_budget))
    return Tile(
        key,
        label,
        f"{status.share:.0%} used",
        _BUDGET_TILE_STATUS[str(status.state)],
        status.share,
        f"{money(status.month_to_date)} of {money(status.monthly_budget)} this month "
        f"(estimate: current allocation x {hours:.0f} h)",
    )


# Rollback --------------------------------------------------------------------------------------

_ROLLBACK_TILE_STATUS = {
    RollbackState.DONE: TileStatus.INFO,
    RollbackState.PENDING: TileStatus.WARN,
    RollbackState.FAILED: TileStatus.FAIL,
}


def _rollback_tile(deployment: Deployment) -> Tile:
    rollback = deployment_selectors.last_rollback(deployment)
    if rollback is None:
        return Tile("rollback", "Last rollback", "never", TileStatus.INFO, None, "")
    when = timezone.localtime(rollback.created_at).strftime("%Y-%m-%d %H:%M")
    who = rollback.actor_label + (" (automatic)" if rollback.automatic else "")
    return Tile(
        "rollback",
        "Last rollback",
        f"to v{rollback.to_version.number}",
        _ROLLBACK_TILE_STATUS.get(rollback.state, TileStatus.INFO),
        None,
        f"by {who} at {when}; {rollback.get_state_display().lower()}"
        + (f": {rollback.reason}" if rollback.reason else ""),
    )


# Error budget and burn rate --------------------------------------------------------------------


def _error_budget_tile(key: VersionKey, batch: SourceBatch, config: Any) -> Tile:
    tile_key, label = "error_budget", "Error budget"
    if config is None:
        return no_data(tile_key, label, "no SLO configured")
    requests = batch.slo_requests.get(key, batch.missing(key))
    errors = batch.slo_errors.get(key, batch.missing(key))
    if not isinstance(requests, Series):
        return no_data(tile_key, label, _reason(requests))
    total = _single(requests)
    if total is None:
        return no_data(tile_key, label, "no request count over the SLO window")
    if isinstance(errors, Series):
        bad = min(_single(errors) or 0.0, total)
    elif isinstance(errors, NoData):
        # Request series exist, so a missing 5xx series means no 5xx yet (docs/monitoring.md).
        bad = 0.0
    else:
        return no_data(tile_key, label, _reason(errors))
    budget = compute_error_budget(config.slo_availability, total - bad, total)
    if budget.remaining < 0:
        status = TileStatus.FAIL
    elif budget.remaining < ERROR_BUDGET_WARN_REMAINING:
        status = TileStatus.WARN
    else:
        status = TileStatus.OK
    window = slo_window_label(batch.slo_window_seconds, batch.horizon_label)
    return Tile(
        tile_key,
        label,
        f"{budget.remaining:.0%} left",
        status,
        budget.remaining,
        f"{budget.bad:.0f} bad of {budget.total:.0f} requests, {budget.allowed:.1f} allowed at "
        f"{config.slo_availability:.3%} over {window}",
    )


def _burn_tile(key: VersionKey, batch: SourceBatch, config: Any) -> tuple[Tile, list[BurnAlert]]:
    tile_key, label = "burn", "Burn rate"
    if config is None:
        return no_data(tile_key, label, "no SLO configured"), []
    ratios: dict[str, float] = {}
    for window, found in batch.burn.items():
        series = found.get(key, batch.missing(key))
        if isinstance(series, Series) and (ratio := _single(series)) is not None:
            ratios[window] = ratio
    if not ratios:
        reason = next(
            (_reason(found.get(key)) for found in batch.burn.values() if found.get(key)), ""
        )
        return no_data(tile_key, label, reason or batch.unavailable or "no requests"), []
    objective = config.slo_availability
    alerts = burn_rate_alerts(ratios, objective)
    by_length = sorted(ratios, key=parse_duration)
    known = ", ".join(f"{w} {ratios[w] / (1 - objective):.1f}x" for w in by_length)
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
        shortest = by_length[0]
        text = f"{ratios[shortest] / (1 - objective):.1f}x over {shortest}"
        status = TileStatus.OK
    return Tile(tile_key, label, text, status, None, f"burn rates: {known}"), alerts


# Business KPI ----------------------------------------------------------------------------------


def _kpi_tile(definition: kpi_module.KpiDefinition, value: float | MetricsUnavailable) -> Tile:
    if isinstance(value, MetricsUnavailable):
        return no_data("kpi", definition.name, value.reason)
    detail = "higher is better ↑" if definition.good_direction == "up" else "lower is better ↓"
    unit = f" {definition.unit}" if definition.unit else ""
    return Tile("kpi", definition.name, f"{value:.4g}{unit}", TileStatus.INFO, value, detail)
