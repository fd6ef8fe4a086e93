"""An optional business KPI per deployment (orders per minute, approval rate, ...): its
definition, stored in the deployment config's `metrics_queries` under the key `kpi` and checked
when the config is saved. Its live value is monitoring's (monitoring.kpi). The `kpi` entry must
never reach the metrics source's query templates: `query_templates()` splits it off."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import ValidationFailed

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
