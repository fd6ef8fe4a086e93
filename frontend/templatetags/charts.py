"""Charts drawn on the server: `{% line_chart chart %}` draws a deployments.evidence_series.Chart
(canary against stable across analysis windows) as inline SVG with axes, ticks, the limit line
and one line per series told apart by dash pattern and marker shape, not colour alone;
`{% chart_swatch role %}` draws a legend's sample of a series; `weights|traffic_segments:canary`
shapes a traffic split for the stacked bar (deployments/_weights.html). No chart library and no
JavaScript; pure functions of what the view loaded: they must never query."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from deployments.evidence_series import Chart

register = template.Library()

WIDTH, HEIGHT = 480, 250
LEFT, RIGHT, TOP, BOTTOM = 66, 16, 18, 52
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
TICKS = 4

# How each role of series is drawn: stroke dash and marker shape carry the difference, the
# colour only repeats it (each colour is at least 3:1 against the white plot: WCAG 1.4.11).
STYLES: dict[str, dict[str, str]] = {
    "stable": {"dash": "", "marker": "circle"},
    "canary": {"dash": "7 4", "marker": "square"},
    "canary-js": {"dash": "2 3", "marker": "triangle"},
}
LIMIT_DASH = "10 3 2 3"
# A traffic segment this narrow gets no text inside the bar (the key under it still says it).
MIN_LABELLED_PERCENT = 14


def format_value(value: float | None, unit: str = "") -> str:
    """A chart value for people: 0.22%, 120 ms, 0.031; "no data" when unknown."""
    if value is None or not math.isfinite(value):
        return "no data"
    if value == 0:
        text = "0"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.3g}"
    return f"{text}%" if unit == "%" else f"{text} {unit}" if unit else text


@register.filter
def chart_value(value: float | None, unit: str = "") -> str:
    return format_value(value, unit)


def nice_top(high: float) -> tuple[float, float]:
    """(top of the axis, tick step): a 1, 2, 2.5 or 5 times a power of ten step, TICKS of them
    at most, reaching at least `high`."""
    if not math.isfinite(high) or high <= 0:
        return 1.0, 0.25
    raw = high / TICKS
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return step * math.ceil(high / step - 1e-9), step


def _x(index: int, count: int) -> float:
    return LEFT + PLOT_W * (index + 0.5) / max(count, 1)


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - value / top * PLOT_H


def _marker(shape: str, x: float, y: float) -> SafeString:
    if shape == "square":
        return format_html(
            '<rect x="{}" y="{}" width="7" height="7"></rect>', f"{x - 3.5:.1f}", f"{y - 3.5:.1f}"
        )
    if shape == "triangle":
        points = f"{x:.1f},{y - 4.5:.1f} {x - 4.5:.1f},{y + 3.5:.1f} {x + 4.5:.1f},{y + 3.5:.1f}"
        return format_html('<polygon points="{}"></polygon>', points)
    return format_html('<circle cx="{}" cy="{}" r="3.5"></circle>', f"{x:.1f}", f"{y:.1f}")


def _series(role: str, values: Sequence[float | None], top: float) -> SafeString:
    """One series: a polyline per run of known values (a gap where a window has no number) and a
    marker at each known value."""
    style = STYLES.get(role, STYLES["stable"])
    runs: list[list[str]] = [[]]
    markers = []
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
            continue
        x, y = _x(index, len(values)), _y(value, top)
        runs[-1].append(f"{x:.1f},{y:.1f}")
        markers.append(_marker(style["marker"], x, y))
    lines = format_html_join(
        "",
        '<polyline points="{}"{}></polyline>',
        (
            (
                " ".join(run),
                format_html(' stroke-dasharray="{}"', style["dash"]) if style["dash"] else "",
            )
            for run in runs
            if len(run) > 1
        ),
    )
    return format_html(
        '<g class="chart-series chart-{}">{}{}</g>',
        role,
        lines,
        mark_safe("".join(markers)),  # noqa: S308 (built by format_html)
    )


def line_chart_svg(chart: Chart) -> SafeString:
    known = [v for s in chart.series for v in s.values if v is not None]
    top, step = nice_top(max([*known, chart.limit or 0.0]) * 1.05)
    count = len(chart.windows)
    parts: list[SafeString] = []
    for i in range(round(top / step) + 1):
        value = i * step
        y = _y(value, top)
        parts.append(
            format_html(
                '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="chart-tick" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LEFT - 6,
                f"{y + 4:.1f}",
                format_value(value),  # the unit is in the axis label
            )
        )
    for index, window in enumerate(chart.windows):
        parts.append(
            format_html(
                '<text class="chart-tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                f"{_x(index, count):.1f}",
                TOP + PLOT_H + 16,
                window.label,
            )
        )
    parts.append(
        format_html(
            '<line class="chart-axis" x1="{l}" x2="{l}" y1="{t}" y2="{b}"></line>'
            '<line class="chart-axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"></line>'
            '<text class="chart-axis-label" x="{cx}" y="{xl}" text-anchor="middle">'
            "Analysis window (canary traffic)</text>"
            '<text class="chart-axis-label" transform="rotate(-90)" x="{cy}" y="14" '
            'text-anchor="middle">{ylabel}</text>',
            l=LEFT,
            r=WIDTH - RIGHT,
            t=TOP,
            b=TOP + PLOT_H,
            cx=LEFT + PLOT_W / 2,
            xl=HEIGHT - 8,
            cy=-(TOP + PLOT_H / 2),
            ylabel=chart.y_label,
        )
    )
    if chart.limit is not None:
        y = _y(chart.limit, top)
        parts.append(
            format_html(
                '<g class="chart-limit"><line x1="{}" x2="{}" y1="{}" y2="{}" '
                'stroke-dasharray="{}"></line>'
                '<text x="{}" y="{}" text-anchor="end">{} {}</text></g>',
                LEFT,
                WIDTH - RIGHT,
                f"{y:.1f}",
                f"{y:.1f}",
                LIMIT_DASH,
                WIDTH - RIGHT - 2,
                f"{y - 5:.1f}",
                chart.limit_label,
                format_value(chart.limit, chart.unit),
            )
        )
    for series in chart.series:
        parts.append(_series(series.role, series.values, top))
    summary = "; ".join(
        f"{s.name}: "
        + ", ".join(
            f"{w.label} {format_value(v, chart.unit)}"
            for w, v in zip(chart.windows, s.values, strict=True)
        )
        for s in chart.series
    )
    if chart.limit is not None:
        summary += f"; {chart.limit_label} {format_value(chart.limit, chart.unit)}"
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{k}-title {k}-desc" '
        'focusable="false"><title id="{k}-title">{title}</title><desc id="{k}-desc">{desc}</desc>'
        "{body}</svg>",
        w=WIDTH,
        h=HEIGHT,
        k=chart.key,
        title=chart.title,
        desc=summary,
        body=mark_safe("".join(parts)),  # noqa: S308 (each part was built by format_html)
    )


@register.simple_tag
def line_chart(chart: Chart) -> SafeString:
    return line_chart_svg(chart)


@register.simple_tag
def chart_swatch(role: str) -> SafeString:
    """A legend's sample of a series (or of the limit line, role "limit"): decorative, the text
    beside it names the series."""
    if role == "limit":
        body = format_html(
            '<line class="chart-limit-line" x1="1" x2="31" y1="7" y2="7" stroke-dasharray="{}">'
            "</line>",
            LIMIT_DASH,
        )
    else:
        style = STYLES.get(role, STYLES["stable"])
        dash = format_html(' stroke-dasharray="{}"', style["dash"]) if style["dash"] else ""
        body = format_html(
            '<line x1="1" x2="31" y1="7" y2="7"{}></line>{}', dash, _marker(style["marker"], 16, 7)
        )
    return format_html(
        '<svg class="chart-swatch chart-{}" width="32" height="14" viewBox="0 0 32 14" '
        'aria-hidden="true" focusable="false">{}</svg>',
        role,
        body,
    )


@register.filter
def traffic_segments(weights: Any, canary: Any = None) -> list[dict[str, Any]]:
    """The split as the bar's segments, oldest version first so the new version grows from the
    right: each with its label ("v3 20%"), whether it is the canary (the release's version, or
    else the newest of several) and whether its text fits inside the bar."""
    pairs = sorted((int(v), int(p)) for v, p in (weights or []))
    if canary in (None, ""):
        canary = pairs[-1][0] if len(pairs) > 1 else None
    return [
        {
            "number": number,
            "percent": percent,
            "label": f"v{number} {percent}%",
            "is_canary": canary is not None and number == int(canary),
            "fits": percent >= MIN_LABELLED_PERCENT,
        }
        for number, percent in pairs
        if percent > 0
    ]


@register.filter
def traffic_summary(weights: Any) -> str:
    """The split in words, for the bar's accessible name: "v2 80%, v3 20%"."""
    pairs = sorted((int(v), int(p)) for v, p in (weights or []))
    return ", ".join(f"v{v} {p}%" for v, p in pairs if p > 0) or "no traffic"
