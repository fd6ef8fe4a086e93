"""The live value of a deployment's business KPI (its definition: deployments.kpi), read from
Prometheus in one query for every deployment of an environment. It must never turn a failed or
empty query into a number (the answer is `MetricsUnavailable`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from deployments.kpi import KpiDefinition
from monitoring.sources.base import MetricsUnavailable, NoData, VersionKey, resolve_window
from monitoring.sources.prometheus import PrometheusSource, render_template


def batch_kpi_values(
    source: Any,
    wanted: Sequence[tuple[VersionKey, KpiDefinition]],
    window_seconds: float,
    end: float | None = None,
) -> dict[VersionKey, float | MetricsUnavailable]:
    """Every version's KPI at `end` in one instant query (the expressions joined the way the
    source joins its own). Only a `PrometheusSource` can answer arbitrary PromQL; any other
    source gets `MetricsUnavailable` for every version."""
    if not wanted:
        return {}
    if not isinstance(source, PrometheusSource):
        return {
            key: MetricsUnavailable("business KPIs need a Prometheus metrics source", key=key)
            for key, _ in wanted
        }
    window, end_ts, _ = resolve_window(window_seconds, end, None, min_step=0)
    parts = {(key, "kpi"): f"sum({render_template(kpi.query, key, window)})" for key, kpi in wanted}
    try:
        # One round trip through the source's own batching, error mapping and client.
        answer = source._instant_series(parts, end_ts)
    except MetricsUnavailable as exc:
        return {key: type(exc)(exc.reason, key=key, query=exc.query) for key, _ in wanted}
    results: dict[VersionKey, float | MetricsUnavailable] = {}
    for key, _ in wanted:
        values = [value for _, value in answer.get((key, "kpi"), []) if math.isfinite(value)]
        if len(values) == 1:
            results[key] = values[0]
        else:
            results[key] = NoData("the KPI query answered no finite value", key=key)
    return results
