"""The pieces the release page draws with: the chart tag's SVG and numbers, the series read back
from analysis evidence, the traffic bar's segments, and the version diff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deployments.evidence_series import Chart, Series, Window, release_charts
from deployments.version_diff import MAX_ROWS_PER_SECTION, distribution_summary, version_diff
from frontend.templatetags.charts import (
    format_value,
    line_chart_svg,
    nice_top,
    traffic_segments,
    traffic_summary,
)
from registry.models import ModelVersion
from tests.factories import release_of

AT = datetime(2026, 1, 1, tzinfo=UTC)


def chart(stable: list[float | None], canary: list[float | None], limit: float | None = 1.0):  # type: ignore[no-untyped-def]
    windows = [Window(i + 1, AT, f"{10 * (i + 1)}%", "pass") for i in range(len(stable))]
    return Chart(
        "chart-test",
        "Error rate: canary v3 against stable v2",
        "%",
        "Error rate (%)",
        windows,
        [Series("stable v2", "stable", stable), Series("canary v3", "canary", canary)],
        limit,
        "SLO limit" if limit is not None else "",
    )


@pytest.mark.parametrize(
    ("high", "top", "step"),
    [(0.0, 1.0, 0.25), (1.05, 1.5, 0.5), (0.42, 0.6, 0.2), (630, 800, 200), (3, 3, 1)],
)
def test_the_axis_ends_on_a_round_number_above_the_data(high, top, step):
    assert nice_top(high) == pytest.approx((top, step))


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(None, "%", "no data"), (0.0, "%", "0%"), (0.22, "%", "0.22%"), (123.4, "ms", "123 ms"),
     (1.5, "ms", "1.5 ms"), (1234.0, "ms", "1,234 ms"), (0.0312, "", "0.0312")],
)  # fmt: skip
def test_values_read_as_people_write_them(value, unit, text):
    assert format_value(value, unit) == text


def test_a_chart_has_a_name_axes_a_limit_and_two_series_told_apart_by_more_than_colour():
    svg = str(line_chart_svg(chart([0.2, 0.25, 0.2], [0.3, None, 0.4])))
    assert svg.startswith('<svg class="chart" viewBox="0 0 480 250" role="img"')
    assert 'aria-labelledby="chart-test-title chart-test-desc"' in svg
    assert "Analysis window (canary traffic)</text>" in svg and ">Error rate (%)</text>" in svg
    assert 'stroke-dasharray="10 3 2 3"' in svg and "SLO limit 1%" in svg
    stable = svg.split('<g class="chart-series chart-stable">')[1].split("</g>")[0]
    canary = svg.split('<g class="chart-series chart-canary">')[1].split("</g>")[0]
    assert stable.count("<polyline") == 1 and stable.count("<circle") == 3
    # The canary's missing window is a gap, not a zero: two markers and no line across it.
    assert canary.count("<polyline") == 0 and canary.count("<rect") == 2
    assert "canary v3: 10% 0.3%, 20% no data, 30% 0.4%" in svg  # the description says it too


def test_one_window_is_drawn_as_markers():
    svg = str(line_chart_svg(chart([0.2], [0.3], limit=None)))
    assert "<polyline" not in svg and "<circle" in svg and "<rect" in svg
    assert "chart-limit" not in svg


def test_the_traffic_bar_puts_the_old_version_first_and_marks_the_canary():
    segments = traffic_segments([(3, 80), (2, 20)], 3)
    assert [(s["label"], s["is_canary"], s["fits"]) for s in segments] == [
        ("v2 20%", False, True),
        ("v3 80%", True, True),
    ]
    assert [s["is_canary"] for s in traffic_segments([(2, 95), (3, 5)])] == [False, True]
    assert traffic_segments([(3, 100)]) == [
        {"number": 3, "percent": 100, "label": "v3 100%", "is_canary": False, "fits": True}
    ]
    assert traffic_segments([(2, 100), (3, 0)], "") == traffic_segments([(2, 100)])
    assert traffic_summary([(3, 10), (2, 90)]) == "v2 90%, v3 10%"
    assert traffic_summary([]) == "no traffic"


@pytest.mark.django_db
def test_only_windows_that_measured_both_sides_are_charted(deployment, versions, people):
    release = release_of(deployment, versions[3], people["maintainer"])
    assert release_charts(release) == []
    release.steps.create(kind="analysis", outcome="inconclusive", evidence={"error": "timeout"})
    release.steps.create(
        kind="analysis",
        outcome="pass",
        evidence={
            "weight": 10,
            "stable_stats": {"error_rate": 0.001, "latency_p95": 0.2},
            "canary_stats": {"error_rate": 0.002, "latency_p95": None},
            "thresholds": {"max_error_rate": 0.02, "max_latency_p95_seconds": 0.3},
        },
    )
    charts = release_charts(release)
    assert [c.key for c in charts] == ["chart-error-rate", "chart-latency-p95"]
    errors, latency = charts
    assert [w.label for w in errors.windows] == ["10%"]
    assert errors.series[0].values == pytest.approx([0.1]) and errors.limit == pytest.approx(2.0)
    assert latency.series[1].values == [None] and latency.limit == pytest.approx(300.0)
    assert errors.title == "Error rate: canary v3 against stable v2"


def version(number: int, **fields: object) -> ModelVersion:
    return ModelVersion(
        number=number,
        artifact_uri=f"s3://a/{number}",
        artifact_digest="sha256:" + f"{number}" * 64,
        input_schema=fields.pop("input_schema", {"type": "object"}),
        **fields,
    )


def test_a_first_release_has_nothing_running_and_every_field_new():
    diff = version_diff(None, version(1, config={"threshold": 0.5}))
    assert diff.running is None
    threshold = next(r for r in diff.rows if r.field == "threshold")
    assert (threshold.running, threshold.proposed, threshold.changed) == ("", "0.5", True)


def test_the_diff_names_changed_rows_and_keeps_them_when_a_section_is_cut():
    many = {f"f{i:04d}": {"type": "number"} for i in range(MAX_ROWS_PER_SECTION + 30)}
    changed = {**many, "f0120": {"type": "string"}}
    diff = version_diff(
        version(2, input_schema={"properties": many}),
        version(3, input_schema={"properties": changed}),
    )
    schema = dict(diff.sections())["Input schema"]
    assert len(schema) == MAX_ROWS_PER_SECTION + 1
    assert schema[0].field == "properties.f0120.type" and schema[0].changed
    assert schema[0].name == "input schema properties.f0120.type"
    assert schema[-1].field == "…" and "30 more fields (0 changed)" in schema[-1].running


def test_a_baseline_distribution_reads_as_a_summary():
    numeric = {"type": "numeric", "bin_edges": [0.0, 1.5, 3.0], "counts": [10, 5.0]}
    assert distribution_summary(numeric) == "numeric, 2 bins, 15 values, range 0 to 3"
    categorical = {"type": "categorical", "frequencies": {"b": 2, "a": 1}}
    assert distribution_summary(categorical) == "categorical, 2 categories (a, b), 3 values"


def test_a_section_only_one_version_fills_has_no_placeholder_row():
    diff = dict(version_diff(version(2), version(3, config={"threshold": 0.7})).sections())
    assert [(r.field, r.running, r.proposed) for r in diff["Configuration"]] == [
        ("threshold", "", "0.7")
    ]
    assert [(r.field, r.changed) for r in diff["Evaluation metrics"]] == [("(none)", False)]
