"""The business KPI definition stored in a config's metrics_queries: validation with the field
at fault, and keeping it out of the PromQL template overrides a source is built with."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from deployments.kpi import KpiDefinition, kpi_of, parse_kpi, query_templates, with_kpi
from monitoring.kpi import batch_kpi_values
from monitoring.sources.base import MetricsUnavailable, VersionKey
from monitoring.sources.local import LocalScrapeSource
from monitoring.sources.prometheus import PrometheusSource

GOOD = {
    "name": "Orders",
    "unit": "/min",
    "good_direction": "up",
    "query": "sum(rate(orders_total[5m]))",
}


def test_it_parses_a_kpi():
    assert parse_kpi(GOOD) == KpiDefinition("Orders", "/min", "up", "sum(rate(orders_total[5m]))")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"good_direction": "sideways"}, "metrics_queries.kpi.good_direction"),
        ({"name": ""}, "metrics_queries.kpi.name"),
        ({"query": 3}, "metrics_queries.kpi.query"),
        ({"query": 'sum(x{job="{job}"})'}, "metrics_queries.kpi.query"),
        ({"colour": "red"}, "metrics_queries.kpi"),
    ],
)
def test_it_rejects_a_bad_kpi_naming_the_field(change, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_kpi({**GOOD, **change})
    assert caught.value.field == field


def test_it_rejects_a_kpi_that_is_not_an_object():
    with pytest.raises(ValidationFailed, match="must be an object"):
        parse_kpi("sum(orders_total)")


def test_the_kpi_never_reaches_the_source_templates():
    stored = with_kpi({"requests": "sum(x[{window}])"}, parse_kpi(GOOD))
    assert stored["kpi"] == GOOD
    assert query_templates(stored) == {"requests": "sum(x[{window}])"}
    # A PrometheusSource accepts what is left (it rejects unknown template names).
    PrometheusSource("http://127.0.0.1:9", query_templates=query_templates(stored))
    assert kpi_of(stored) == parse_kpi(GOOD)
    assert "kpi" not in with_kpi(stored, None)
    assert kpi_of({}) is None


def test_only_prometheus_can_answer_a_kpi():
    key = VersionKey("orders", 1)
    found = batch_kpi_values(LocalScrapeSource(retention_seconds=60), [(key, parse_kpi(GOOD))], 60)
    assert isinstance(found[key], MetricsUnavailable)
    assert "Prometheus" in found[key].reason


def test_an_unreachable_prometheus_gives_no_kpi_value():
    key = VersionKey("orders", 1)
    source = PrometheusSource("http://127.0.0.1:9", timeout_seconds=1)
    found = batch_kpi_values(source, [(key, parse_kpi(GOOD))], 60)
    assert isinstance(found[key], MetricsUnavailable)
