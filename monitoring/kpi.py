"""An optional business KPI per deployment (orders per minute, approval rate, ...): its definition,
stored in the deployment config's `metrics_queries` under the key `kpi`, and its live value read
from Prometheus in one query for every deployment of an environment.

It must never turn a failed or empty query into a number (the answer is `MetricsUnavailable`),
and the `kpi` entry must never reach `PrometheusSource(query_templates=...)`, which only knows
the serving templates: use `query_templates()` to split it off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.errors import ValidationFailed
from monitoring.sources.base import MetricsUnavailable, NoData, VersionKey, resolve_window
from monitoring.sources.prometheus import PrometheusSource, render_template

KPI_KEY = "kpi"
GOOD_DIRECTIONS = ("up", "down")
_NAME_MAX = 80
_UNIT_MAX = 20
_QUERY_MAX = 2000
# The placeholders a KPI query may use, as in the serving templates.
_ALLOWED_PLACEHOLDERS = {"model", "version", "window"}
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class KpiDefinition:
    """A business number the owners watch next to the technical tiles. `query` is PromQL that
    answers one series; it may use `{model}`, `{version}` and `{window}` to read per track."""

    name: str
    unit: str
    good_direction: str  # "up" | "down"
    query: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "unit": self.unit,
            "good_direction": self.good_direction,
            "query": self.query,
        }


def parse_kpi(raw: Any) -> KpiDefinition:
    """A KPI from its stored form, or `ValidationFailed` naming the field that is wrong."""
    field = f"metrics_queries.{KPI_KEY}"
    if not isinstance(raw, Mapping):
        raise ValidationFailed("must be an object {name, unit, good_direction, query}", field=field)
    unknown = set(raw) - {"name", "unit", "good_direction", "query"}
    if unknown:
        raise ValidationFailed(f"unknown key(s) {sorted(unknown)}", field=field)
    values: dict[str, str] = {}
    for key, limit, required in (
        ("name", _NAME_MAX, True),
        ("unit", _UNIT_MAX, False),
        ("good_direction", 4, True),
        ("query", _QUERY_MAX, True),
    ):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ValidationFailed("must be a string", field=f"{field}.{key}")
        value = value.strip()
        if required and not value:
            raise ValidationFailed("is required", field=f"{field}.{key}")
        if len(value) > limit:
            raise ValidationFailed(f"must be at most {limit} characters", field=f"{field}.{key}")
        values[key] = value
    if values["good_direction"] not in GOOD_DIRECTIONS:
        raise ValidationFailed('must be "up" or "down"', field=f"{field}.good_direction")
    unknown_placeholders = set(_PLACEHOLDER.findall(values["query"])) - _ALLOWED_PLACEHOLDERS
    if unknown_placeholders:
        raise ValidationFailed(
            f"unknown placeholder(s) {sorted(unknown_placeholders)}; "
            "use {model}, {version} or {window}",
            field=f"{field}.query",
        )
    return KpiDefinition(**values)


def kpi_of(metrics_queries: Mapping[str, Any] | None) -> KpiDefinition | None:
    """The KPI stored in a config's `metrics_queries`, None when there is none; a malformed
    stored entry raises `ValidationFailed` (the caller shows it, it is not silently dropped)."""
    raw = (metrics_queries or {}).get(KPI_KEY)
    return None if raw is None else parse_kpi(raw)


def query_templates(metrics_queries: Mapping[str, Any] | None) -> dict[str, str]:
    """The PromQL template overrides of a config without the KPI entry: what a
    `PrometheusSource` may be given."""
    return {
        name: value
        for name, value in (metrics_queries or {}).items()
        if name != KPI_KEY and isinstance(value, str)
    }


def with_kpi(
    metrics_queries: Mapping[str, Any] | None, kpi: KpiDefinition | None
) -> dict[str, Any]:
    """A new `metrics_queries` value holding `kpi` (or none), to pass to
    `deployments.services.deployment_configure(metrics_queries=...)`."""
    updated = dict(metrics_queries or {})
    updated.pop(KPI_KEY, None)
    if kpi is not None:
        updated[KPI_KEY] = kpi.as_dict()
    return updated


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
