"""PromQL templates, label escaping and failure handling of the Prometheus source."""

from __future__ import annotations

import time

import pytest

from monitoring.sources.base import MetricsUnavailable, VersionKey
from monitoring.sources.prometheus import (
    DEFAULT_QUERY_TEMPLATES,
    PrometheusSource,
    escape_label_value,
    promql_duration,
    render_template,
)
from tests.support.prometheus import free_port


def test_it_escapes_label_values_for_a_promql_string():
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_it_renders_placeholders_and_leaves_promql_braces_alone():
    query = render_template(DEFAULT_QUERY_TEMPLATES["errors"], VersionKey('fr"aud', 3), 12.5)
    assert query == (
        'sum(increase(model_requests_total{model="fr\\"aud",version="3",code=~"5.."}[12500ms]))'
    )
    latency = render_template(
        DEFAULT_QUERY_TEMPLATES["latency_quantile"], VersionKey("fraud", 3), 60, quantile=0.95
    )
    assert latency.startswith("histogram_quantile(0.95, sum by (le) (rate(")


def test_durations_are_whole_milliseconds():
    assert promql_duration(1.5) == "1500ms"
    assert promql_duration(0.0001) == "1ms"


def test_it_rejects_unknown_template_names():
    with pytest.raises(ValueError, match="unknown query template"):
        PrometheusSource("http://127.0.0.1:9090", query_templates={"reqs": "up"})


def test_an_unreachable_prometheus_is_unavailable_not_zero():
    source = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    key = VersionKey("fraud", 1)
    started = time.monotonic()
    found = source.batch_window_stats([key], 30)
    assert isinstance(found[key], MetricsUnavailable)
    assert "unreachable" in found[key].reason
    assert time.monotonic() - started < 5
    with pytest.raises(MetricsUnavailable):
        source.window_stats(key, 30)
    with pytest.raises(MetricsUnavailable):
        source.series(key, "error_rate", 30, 5)


def test_a_template_prometheus_rejects_is_unavailable(prometheus_factory):
    prometheus = prometheus_factory([])
    source = PrometheusSource(
        prometheus.url, query_templates={"requests": "sum(increase(model_requests_total[{window}]"}
    )
    with pytest.raises(MetricsUnavailable, match="rejected the query") as caught:
        source.window_stats(VersionKey("fraud", 1), 30)
    assert "model_requests_total" in caught.value.query


def test_templates_can_be_replaced_per_deployment(prometheus_factory):
    # A runtime exporting other names: Prometheus scraping itself stands in for it, and its
    # query API's request counter plays the part of the runtime's request counter.
    port = free_port()
    prometheus = prometheus_factory([f"127.0.0.1:{port}"], port=port)
    prometheus.wait_for_scrapes(2)
    own = 'sum(increase(prometheus_http_requests_total{handler="/api/v1/query"}[{window}]))'
    source = PrometheusSource(
        prometheus.url, query_templates={"requests": own}, scrape_interval_seconds=1
    )
    stats = source.window_stats(VersionKey("anything", 1), 10)
    assert stats.requests > 0  # wait_for_scrapes polled the query API several times
    assert stats.queries[0].startswith("sum(increase(prometheus_http_requests_total")
